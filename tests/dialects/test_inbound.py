"""The helpers every inbound face shares (``proxy.dialects.inbound``)."""

from __future__ import annotations

import pytest

from proxy.dialects.inbound import (
    StreamEncoder,
    finish_word,
    finish_words,
    json_body,
    non_empty_string,
    optional_integer,
    optional_object,
    reply_arguments,
)
from proxy.errors import InvalidRequest, TollwayError
from proxy.model import (
    Finish,
    FinishReason,
    FunctionCall,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "the request body is empty", id="empty"),
        pytest.param(b"{", "the request body is not valid JSON", id="not-json"),
        pytest.param(b"[1]", "the request body must be a JSON object", id="not-an-object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        json_body(body)


def test_field_checks_name_the_field_in_the_message_and_param() -> None:
    with pytest.raises(InvalidRequest, match=r"`tools\[0\].name` must be a non-empty string") as e:
        non_empty_string("", "tools[0].name")
    assert e.value.param == "tools[0].name"
    with pytest.raises(InvalidRequest, match="`k` must be an integer of at least 0"):
        optional_integer(-1, "k", minimum=0)
    with pytest.raises(InvalidRequest, match="`k` must be an integer"):
        optional_integer(True, "k")


def test_a_left_out_object_is_empty() -> None:
    assert optional_object(None, "args") == {}
    with pytest.raises(InvalidRequest, match="`args` must be an object"):
        optional_object([], "args")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param('{"a": 1}', {"a": 1}, id="json-text"),
        pytest.param({"a": 1}, {"a": 1}, id="object"),
        pytest.param(None, {}, id="none"),
        pytest.param("not json", {}, id="not-json"),
        pytest.param("[1]", {}, id="not-an-object"),
    ],
)
def test_reply_arguments_never_fail_a_reply(
    arguments: str | dict[str, int] | None, expected: dict[str, int]
) -> None:
    call = ToolCall(id="c", function=FunctionCall(name="f", arguments=arguments))
    assert reply_arguments(call) == expected


def test_a_finish_reason_without_a_word_is_a_plain_stop() -> None:
    words = finish_words(stop="END", length="MAX", tool_calls="TOOL", content_filter="FILTER")
    assert finish_word(words, "function_call") == "TOOL"
    assert finish_word(words, None) == "END"
    assert finish_word(words, "something_new") == "END"


class _Recorder(StreamEncoder):
    """Writes each kind of event as one tagged line."""

    def error(self, exc: TollwayError) -> bytes:
        return b"error"

    def _text(self, text: str) -> bytes:
        return b"text:" + text.encode() + b"\n"

    def _reasoning(self, text: str) -> bytes:
        return b"reasoning:" + text.encode() + b"\n"

    def _tool_call(self, delta: ToolCallDelta) -> bytes:
        return b"tool:" + delta.arguments.encode() + b"\n"

    def _finish(self, reason: FinishReason) -> bytes:
        return b"finish:" + reason.encode() + b"\n"

    def _trailer(self) -> bytes:
        usage = self._usage
        return b"usage:" + str(usage.total_tokens if usage else None).encode() + b"\n"


def test_stream_encoder_drops_empty_deltas_keeps_the_last_usage_and_stops_after_finish() -> None:
    encoder = _Recorder()
    events = [
        Start(id="chatcmpl-1", model="m"),
        TextDelta(""),
        ReasoningDelta("hm"),
        TextDelta("hi"),
        ToolCallDelta(index=0, arguments="{}"),
        Finish("stop"),
        UsageReport(Usage(total_tokens=3)),
        UsageReport(Usage(total_tokens=5)),
    ]
    out = b"".join(encoder.encode(event) for event in events) + encoder.finish()
    assert out == b"reasoning:hm\ntext:hi\ntool:{}\nfinish:stop\nusage:5\n"
    assert encoder.encode(TextDelta("late")) == b""
    assert encoder.finish() == b""
