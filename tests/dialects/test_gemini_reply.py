"""``gemini/`` replies, streams, errors and embeddings → the common model.

Fixtures follow the Gemini API reference (GenerateContentResponse, UsageMetadata, the SSE
events of ``streamGenerateContent?alt=sse``, the ``google.rpc`` error shape); streams are fed
as the whole frames the engine cuts out of the bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.base import ChatExchange, Frame, Target
from proxy.dialects.gemini import DIALECT, SIGNATURE_MARK, contract_error
from proxy.errors import InvalidRequest, UpstreamError, UpstreamStatusError, UpstreamUnreachable
from proxy.model import (
    ChatRequest,
    EmbeddingRequest,
    Finish,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from tests.dialects.replies import ReplyBuilder

TARGET = Target(model="gemini-2.5-flash", provider="gemini")


def reply(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4},
        "responseId": "resp-1",
        **extra,
    }


def exchange() -> ChatExchange:
    request = ChatRequest(model="gemini-2.5-flash", messages=[Message(role="user", content="hi")])
    return DIALECT.chat(request, TARGET)


def decode(payload: dict[str, Any]) -> Any:
    return exchange().decode_reply(orjson.dumps(payload))


def frames(*payloads: dict[str, Any]) -> list[Frame]:
    return [Frame(data=orjson.dumps(p)) for p in payloads]


def events_of(stream: list[Frame]) -> list[StreamEvent]:
    decoder = exchange().stream_decoder()
    events: list[StreamEvent] = []
    for frame in stream:
        events += decoder.feed(frame)
    return events + decoder.finish()


# -- reply ---------------------------------------------------------------------------------
def test_text_reasoning_and_usage_map_to_a_chat_reply() -> None:
    payload = reply(
        [{"text": "let me think", "thought": True}, {"text": "Hello"}, {"text": " there"}],
        usageMetadata={
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 7,
            "thoughtsTokenCount": 20,
            "toolUsePromptTokenCount": 3,
            "totalTokenCount": 130,
        },
    )
    result = decode(payload)
    assert result.id == "chatcmpl-resp-1"
    assert result.model == "gemini-2.5-flash"
    (choice,) = result.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there"
    assert choice.message.reasoning_content == "let me think"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (103, 27, 130)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (60, 20)


def test_a_reply_without_a_response_id_gets_a_fresh_one() -> None:
    payload = reply([{"text": "ok"}])
    del payload["responseId"]
    first, second = decode(payload), decode(payload)
    assert first.id.startswith("chatcmpl-") and first.id != second.id


def test_function_calls_become_tool_calls_with_json_string_arguments() -> None:
    parts: list[dict[str, Any]] = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"},
    ]
    (choice,) = decode(reply(parts)).choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    first, second = choice.message.tool_calls
    assert first.type == "function" and first.id.startswith("call_")
    assert (first.function.name, first.function.arguments) == ("get_weather", '{"city":"Paris"}')
    assert first.id != second.id
    assert second.id.endswith(SIGNATURE_MARK + "c2lnbmF0dXJl")


def test_a_function_call_keeps_the_id_gemini_gave_it() -> None:
    parts = [{"functionCall": {"id": "fc-7", "name": "f"}, "thoughtSignature": "c2ln"}]
    (call,) = decode(reply(parts)).message.tool_calls
    assert call.id == "fc-7" + SIGNATURE_MARK + "c2ln"
    assert call.function.arguments == "{}"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        pytest.param("STOP", "stop", id="stop"),
        pytest.param("MAX_TOKENS", "length", id="max-tokens"),
        pytest.param("SAFETY", "content_filter", id="safety"),
        pytest.param("RECITATION", "content_filter", id="recitation"),
        pytest.param("BLOCKLIST", "content_filter", id="blocklist"),
        pytest.param("PROHIBITED_CONTENT", "content_filter", id="prohibited"),
        pytest.param("SPII", "content_filter", id="spii"),
        pytest.param("IMAGE_SAFETY", "content_filter", id="image-safety"),
        pytest.param("OTHER", "stop", id="other"),
    ],
)
def test_finish_reasons_map_to_openai_names(reason: str, finish: str) -> None:
    assert decode(reply([{"text": "x"}], reason)).finish_reason == finish


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    payload = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9},
    }
    result = decode(payload)
    (choice,) = result.choices
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is None
    assert result.usage.prompt_tokens == 9


def test_a_reply_that_is_not_gemini_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        exchange().decode_reply(b"<html>oops</html>")


# -- streaming -----------------------------------------------------------------------------
TEXT_STREAM = frames(
    reply([{"text": "Hel"}], None, usageMetadata={"promptTokenCount": 12}),
    reply([{"text": "lo"}], None, usageMetadata={"promptTokenCount": 12}),
    reply(
        [{"text": "!"}],
        "STOP",
        usageMetadata={"promptTokenCount": 12, "candidatesTokenCount": 3,
                       "cachedContentTokenCount": 4},
    ),
)  # fmt: skip


def test_a_text_stream_is_start_deltas_finish_then_usage() -> None:
    events = events_of(TEXT_STREAM)
    start, *middle, finish, report = events
    assert isinstance(start, Start)
    assert (start.id, start.model) == ("chatcmpl-resp-1", "gemini-2.5-flash")
    deltas = [e for e in middle if not isinstance(e, UsageReport)]
    assert deltas == [TextDelta("Hel"), TextDelta("lo"), TextDelta("!")]
    assert finish == Finish("stop")
    # Usage is reported as it changes (the first event's prompt count, so a stream cut
    # before its finish is still billed), not again when an event repeats it unchanged.
    (early,) = [e for e in middle if isinstance(e, UsageReport)]
    assert middle.index(early) == 1 and early.usage.prompt_tokens == 12
    assert isinstance(report, UsageReport)
    usage = report.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 3, 15)
    assert usage.cached_tokens == 4


def test_usage_is_reported_whatever_the_client_asked_for() -> None:
    # The decoder never sees include_usage: the encoder decides what the client is shown.
    assert isinstance(events_of(TEXT_STREAM)[-1], UsageReport)


def test_thoughts_stream_as_reasoning_and_empty_frames_are_skipped() -> None:
    stream = [
        Frame(data=b"  "),
        *frames(reply([{"text": "hmm", "thought": True}, {"text": ""}, {"text": "Hi"}], "STOP")),
    ]
    events = events_of(stream)
    assert events[1:3] == [ReasoningDelta("hmm"), TextDelta("Hi")]


def test_a_streamed_function_call_arrives_whole_with_id_name_and_arguments() -> None:
    calls = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]
    events = events_of(frames(reply([{"text": "Checking."}], None), reply(calls, "STOP")))
    tool_deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [d.index for d in tool_deltas] == [0, 1]
    for delta, city in zip(tool_deltas, ("Paris", "Rome"), strict=True):
        assert delta.id is not None and delta.id.startswith("call_")
        assert delta.name == "get_weather"
        assert orjson.loads(delta.arguments) == {"city": city}
    assert [e for e in events if isinstance(e, Finish)] == [Finish("tool_calls")]
    builder = ReplyBuilder()
    for event in events:
        builder.add(event)
    built = builder.build()
    assert built.message.content == "Checking."
    assert [c.function.arguments for c in built.message.tool_calls or ()] == [
        '{"city":"Paris"}',
        '{"city":"Rome"}',
    ]


def test_a_streamed_signature_rides_in_the_tool_call_id() -> None:
    part = {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}
    (delta,) = [e for e in events_of(frames(reply([part]))) if isinstance(e, ToolCallDelta)]
    assert delta.id is not None and delta.id.endswith(SIGNATURE_MARK + "c2ln")


def test_a_blocked_prompt_streams_a_content_filter_finish() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9},
    }
    start, finish, report = events_of(frames(blocked))
    assert isinstance(start, Start) and finish == Finish("content_filter")
    assert isinstance(report, UsageReport) and report.usage.prompt_tokens == 9


def test_events_after_the_finish_only_update_usage() -> None:
    late = reply([{"text": "late"}], None, usageMetadata={"promptTokenCount": 12,
                                                          "candidatesTokenCount": 9})  # fmt: skip
    events = events_of([*TEXT_STREAM, *frames(late)])
    assert [e for e in events if isinstance(e, TextDelta)][-1] == TextDelta("!")
    report = events[-1]
    assert isinstance(report, UsageReport) and report.usage.completion_tokens == 9


def test_an_error_event_mid_stream_raises_the_mapped_error() -> None:
    decoder = exchange().stream_decoder()
    (first,) = frames(reply([{"text": "Hel"}], None))
    assert TextDelta("Hel") in decoder.feed(first)
    error = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(Frame(data=orjson.dumps(error)))
    assert caught.value.status == 502 and caught.value.retryable
    assert caught.value.type == "upstream_error"
    assert caught.value.message == "upstream error (503): overloaded"


def test_a_rate_limit_event_mid_stream_keeps_its_status_and_delay() -> None:
    error = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED",
                       "details": [{"retryDelay": "2.4s"}]}}  # fmt: skip
    with pytest.raises(UpstreamStatusError) as caught:
        exchange().stream_decoder().feed(Frame(data=orjson.dumps(error)))
    assert (caught.value.status, caught.value.type) == (429, "rate_limit_error")
    assert caught.value.headers["retry-after"] == "2"


def test_an_event_that_is_not_gemini_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        exchange().stream_decoder().feed(Frame(data=b"{not json"))


def test_a_stream_cut_before_its_finish_is_an_error_with_its_usage_kept() -> None:
    decoder = exchange().stream_decoder()
    for frame in frames(reply([{"text": "Hel"}], None)):
        decoder.feed(frame)
    with pytest.raises(UpstreamUnreachable):
        decoder.finish()
    assert decoder.usage is not None and decoder.usage.prompt_tokens == 12


# -- errors --------------------------------------------------------------------------------
def google_error(status: int, code: str, message: str, *details: Any) -> bytes:
    error = {"code": status, "message": message, "status": code, "details": list(details)}
    return orjson.dumps({"error": error})


INVALID_KEY = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


@pytest.mark.parametrize(
    ("http", "body", "fault", "contract"),
    [
        pytest.param(
            400, google_error(400, "INVALID_ARGUMENT", "bad field"),
            (400, "INVALID_ARGUMENT", None), (400, "invalid_request_error", False), id="400",
        ),
        pytest.param(
            400, google_error(400, "INVALID_ARGUMENT", "API key not valid", INVALID_KEY),
            (401, "API_KEY_INVALID", None), (401, "authentication_error", False),
            id="invalid-key",
        ),
        pytest.param(
            403, google_error(403, "PERMISSION_DENIED", "denied"),
            (403, "PERMISSION_DENIED", None), (403, "permission_error", False), id="403",
        ),
        pytest.param(
            404, google_error(404, "NOT_FOUND", "no such model"),
            (404, "NOT_FOUND", None), (404, "not_found_error", False), id="404",
        ),
        pytest.param(
            429, google_error(429, "RESOURCE_EXHAUSTED", "quota", RETRY),
            (429, "RESOURCE_EXHAUSTED", "37"), (429, "rate_limit_error", True), id="429",
        ),
        pytest.param(
            500, google_error(500, "INTERNAL", "oops"),
            (500, "INTERNAL", None), (502, "upstream_error", True), id="500",
        ),
        pytest.param(
            503, google_error(503, "UNAVAILABLE", "The model is overloaded."),
            (503, "UNAVAILABLE", None), (502, "upstream_error", True), id="503-overloaded",
        ),
        pytest.param(
            502, b"<html>bad gateway</html>",
            (502, None, None), (502, "upstream_error", True), id="not-json",
        ),
    ],
)  # fmt: skip
def test_errors_map_to_faults_that_give_the_contract_error(
    http: int, body: bytes, fault: tuple[Any, ...], contract: tuple[Any, ...]
) -> None:
    found = DIALECT.fault(http, body)
    assert (found.status, found.code, found.retry_after) == fault
    error = contract_error(found)
    assert (error.status, error.type, error.retryable) == contract
    if found.retry_after:
        assert error.headers["retry-after"] == found.retry_after


def test_a_fault_carries_gemini_message_or_the_body_text() -> None:
    assert DIALECT.fault(400, google_error(400, "INVALID_ARGUMENT", "bad field")).message == (
        "bad field"
    )
    assert DIALECT.fault(502, b"<html>bad gateway</html>").message == "<html>bad gateway</html>"
    assert DIALECT.fault(500, b"").message == "the upstream returned HTTP 500"


# -- embeddings ----------------------------------------------------------------------------
def test_embeddings_use_batch_embed_contents_and_are_billed_as_estimated() -> None:
    request = EmbeddingRequest(model="text-embedding-004", input=["a", "b"])
    ex = DIALECT.embeddings(request, Target(model="text-embedding-004"))
    assert orjson.loads(ex.body) == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}},
        ]
    }
    canned = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}
    result = ex.decode_reply(orjson.dumps(canned))
    assert result.model == "text-embedding-004"
    assert [(d.index, d.embedding) for d in result.data] == [(0, [0.1, 0.2]), (1, [0.3, 0.4])]
    assert result.usage is None


def test_embedding_inputs_must_be_text() -> None:
    request = EmbeddingRequest(model="text-embedding-004", input=[[1, 2, 3]])
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.embeddings(request, Target(model="text-embedding-004"))
    assert caught.value.param == "input"
