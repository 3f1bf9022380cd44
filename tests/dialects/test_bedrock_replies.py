"""``bedrock`` dialect: Converse replies, ConverseStream frames and error replies."""

from __future__ import annotations

import orjson
import pytest

from proxy.dialects.base import Frame
from proxy.dialects.bedrock import DIALECT, JSON_TOOL, error_of, fault_from
from proxy.errors import TollwayError, UpstreamError, UpstreamStatusError, UpstreamTimeout
from proxy.model import (
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from proxy.upstream.eventstream import encode_message
from tests.dialects.bedrock_payloads import CONVERSE_REPLY, tool_stream
from tests.dialects.replies import ReplyBuilder
from tests.dialects.test_bedrock import (
    MODEL_ID,
    TARGET,
    chat,
    decode,
    frames,
    request,
    run,
)
from tests.providers.harness_bedrock import event

_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


# -- reply translation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reason_maps_to_finish_reason(stop_reason: str, finish: str) -> None:
    answer = decode(chat(), {**CONVERSE_REPLY, "stopReason": stop_reason})
    assert answer.finish_reason == finish


def test_reply_has_tool_calls_and_cached_usage() -> None:
    reply_body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Let me look."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_9",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": CONVERSE_REPLY["usage"],
    }
    reply = decode(chat(), reply_body)
    assert reply.model == MODEL_ID
    assert reply.id.startswith("chatcmpl-")
    (choice,) = reply.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Let me look."
    (call,) = choice.message.tool_calls or []
    assert call.id == "tooluse_9"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.arguments_text()) == {"city": "Paris"}
    # Converse counts cache reads apart from inputTokens; OpenAI's prompt_tokens includes them.
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 5, 15)
    assert usage.cached_tokens == 2


def test_reply_with_only_tool_calls_has_no_content() -> None:
    reply_body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}],
            }
        },
        "stopReason": "tool_use",
    }
    reply = decode(chat(), reply_body)
    assert reply.message.content is None
    assert reply.message.tool_calls is not None
    assert reply.message.tool_calls[0].function.arguments == "{}"
    assert reply.usage is None


def test_reply_reasoning_becomes_reasoning_content() -> None:
    reply_body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
                    {"reasoningContent": {"reasoningText": {"text": "ing"}}},
                    {"text": "42"},
                ],
            }
        },
        "stopReason": "end_turn",
    }
    reply = decode(chat(), reply_body)
    assert reply.message.reasoning_content == "thinking"
    assert reply.message.content == "42"


def test_usage_counts_cache_writes_in_the_prompt() -> None:
    usage = {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 1}
    usage["cacheWriteInputTokens"] = 6
    reply = decode(chat(), {**CONVERSE_REPLY, "usage": usage})
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (10, 1)
    assert reply.usage.completion_tokens == 4


def test_the_fake_bedrock_text_reply_is_pong_with_ten_prompt_tokens() -> None:
    reply = decode(chat("CASE text"), {**CONVERSE_REPLY, "metrics": {"latencyMs": 42}})
    assert reply.message.content == "pong"
    assert reply.usage is not None and reply.usage.prompt_tokens == 10


@pytest.mark.parametrize("body", [b"[]", b"not json", b""])
def test_a_reply_that_is_not_a_json_object_is_an_upstream_error(body: bytes) -> None:
    exchange = DIALECT.chat(request(chat()), TARGET)
    with pytest.raises(UpstreamError, match="not a JSON object"):
        exchange.decode_reply(body)


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_becomes_events_with_tool_argument_deltas(include_usage: bool) -> None:
    body = chat(stream=True, tools=[_TOOL])
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    events = run(body, tool_stream())
    start = events[0]
    assert isinstance(start, Start)
    assert start.model == MODEL_ID
    assert start.id.startswith("chatcmpl-")
    assert events[1:-1] == [
        TextDelta("Hm"),
        ToolCallDelta(index=0, id="tooluse_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        Finish("tool_calls"),
    ]
    # Usage comes last, reported whether or not the client asked for it.
    report = events[-1]
    assert isinstance(report, UsageReport)
    usage = report.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (10, 5, 2)


def test_stream_folds_into_the_same_reply_as_converse() -> None:
    builder = ReplyBuilder()
    for item in run(chat(stream=True), tool_stream()):
        builder.add(item)
    reply = builder.build()
    assert reply.message.content == "Hm"
    (call,) = reply.message.tool_calls or []
    assert (call.id, call.function.name) == ("tooluse_1", "get_weather")
    assert orjson.loads(call.arguments_text()) == {"city": "Paris"}
    assert reply.finish_reason == "tool_calls"


def test_the_fake_bedrock_text_stream_is_pong() -> None:
    messages = [event("messageStart", {"role": "assistant"})]
    for piece in ("po", "ng"):
        delta = {"contentBlockIndex": 0, "delta": {"text": piece}}
        messages.append(event("contentBlockDelta", delta))
    messages += [
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": CONVERSE_REPLY["usage"], "metrics": {"latencyMs": 42}}),
    ]
    events = run(chat("CASE stream_text", stream=True), messages)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "pong"
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    (report,) = [e for e in events if isinstance(e, UsageReport)]
    assert report.usage.prompt_tokens == 10


def test_stream_of_the_json_tool_is_text_and_finishes_with_stop() -> None:
    schema = {"type": "object"}
    body = chat(
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    start = {"toolUse": {"toolUseId": "x", "name": JSON_TOOL}}
    messages = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
        event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"ok"'}}}
        ),
        event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ": 1}"}}}
        ),
        event("messageStop", {"stopReason": "tool_use"}),
    ]
    events = run(body, messages)
    assert events[1:] == [TextDelta('{"ok"'), TextDelta(": 1}"), Finish("stop")]


def test_stream_reasoning_deltas_are_reasoning_events() -> None:
    messages = [
        event("messageStart", {"role": "assistant"}),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}},
        ),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": ""}}),
        event("messageStop", {"stopReason": "max_tokens"}),
    ]
    events = run(chat(stream=True), messages)
    assert events[1:] == [ReasoningDelta("hmm"), Finish("length")]


def test_stream_exception_event_ends_the_stream_with_a_mapped_error() -> None:
    messages = [
        event("messageStart", {"role": "assistant"}),
        encode_message(
            {":message-type": "exception", ":exception-type": "throttlingException"},
            orjson.dumps({"message": "slow down"}),
        ),
    ]
    decoder = DIALECT.chat(request(chat(stream=True)), TARGET).stream_decoder()
    first, exception = frames(*messages)
    assert exception.kind == "exception"
    assert decoder.feed(first)
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(exception)
    assert caught.value.status == 429
    assert caught.value.retryable
    assert caught.value.message == "ThrottlingException: slow down"


def test_stream_error_message_ends_the_stream_with_its_code_and_message() -> None:
    message = encode_message(
        {
            ":message-type": "error",
            ":error-code": "InternalServerException",
            ":error-message": "boom",
        },
        b"",
    )
    decoder = DIALECT.chat(request(chat(stream=True)), TARGET).stream_decoder()
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(frames(message)[0])
    assert caught.value.status == 502
    assert caught.value.retryable
    assert "InternalServerException: boom" in caught.value.message


def test_stream_exception_without_a_name_is_an_internal_server_error() -> None:
    decoder = DIALECT.chat(request(chat(stream=True)), TARGET).stream_decoder()
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(Frame(data=b'{"message": "x"}', event=None, kind="exception"))
    assert caught.value.status == 502
    assert "InternalServerException" in caught.value.message


def test_stream_event_that_is_not_json_is_an_upstream_error() -> None:
    decoder = DIALECT.chat(request(chat(stream=True)), TARGET).stream_decoder()
    with pytest.raises(UpstreamError, match="contentBlockDelta event that is not JSON"):
        decoder.feed(Frame(data=b"{nope", event="contentBlockDelta"))


def test_stream_cut_before_message_stop_is_an_error() -> None:
    decoder = DIALECT.chat(request(chat(stream=True)), TARGET).stream_decoder()
    for frame in frames(*tool_stream()[:4]):
        decoder.feed(frame)
    with pytest.raises(TollwayError, match="before its messageStop"):
        decoder.finish()


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "kind", "expected", "retryable"),
    [
        pytest.param(400, "ValidationException", 400, False, id="validation"),
        pytest.param(403, "AccessDeniedException", 403, False, id="access-denied"),
        pytest.param(403, "UnrecognizedClientException", 401, False, id="bad-credentials"),
        pytest.param(403, "InvalidSignatureException", 401, False, id="bad-signature"),
        pytest.param(404, "ResourceNotFoundException", 404, False, id="not-found"),
        pytest.param(429, "ThrottlingException", 429, True, id="throttled"),
        pytest.param(400, "ServiceQuotaExceededException", 429, True, id="quota"),
        pytest.param(503, "ServiceUnavailableException", 502, True, id="unavailable"),
        pytest.param(429, "ModelNotReadyException", 502, True, id="model-not-ready"),
        pytest.param(500, "InternalServerException", 502, True, id="internal"),
        pytest.param(424, "ModelErrorException", 502, True, id="model-error"),
    ],
)
def test_error_replies_map_to_the_contract(
    status: int, kind: str, expected: int, retryable: bool
) -> None:
    raw = orjson.dumps({"message": "nope"})
    header = f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    fault = fault_from(status, raw, header)
    assert fault.code == kind
    error = error_of(fault)
    assert isinstance(error, UpstreamStatusError)
    assert error.status == expected
    assert error.retryable is retryable
    assert kind in error.body().decode()


def test_error_kind_is_read_from_the_body_type_when_the_header_is_absent() -> None:
    raw = orjson.dumps(
        {"__type": "com.amazon.coral.validate#ValidationException", "Message": "bad"}
    )
    fault = DIALECT.fault(400, raw)
    assert fault == fault_from(400, raw, None)
    error = error_of(fault)
    assert isinstance(error, UpstreamStatusError)
    assert error.status == 400
    assert error.code == "ValidationException"
    assert "bad" in error.message


def test_model_timeout_is_a_gateway_timeout() -> None:
    fault = fault_from(408, b'{"message": "slow"}', "ModelTimeoutException")
    assert (fault.type, fault.answer_status) == ("timeout_error", 504)
    error = error_of(fault)
    assert isinstance(error, UpstreamTimeout)
    assert error.message == "Bedrock: slow"


def test_error_without_a_message_or_name_says_the_status() -> None:
    fault = fault_from(418, b"<html>", None)
    assert (fault.status, fault.message, fault.code) == (418, "Bedrock returned HTTP 418", None)
    error = error_of(fault, retry_after="3")
    assert isinstance(error, UpstreamStatusError)
    assert error.headers == {"retry-after": "3"}


def test_error_message_is_cut_at_2000_characters() -> None:
    fault = fault_from(400, orjson.dumps({"message": "x" * 5000}), "ValidationException")
    assert fault.message == "ValidationException: " + "x" * 2000
