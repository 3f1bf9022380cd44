"""The ``anthropic`` dialect, outbound streams: Messages stream frames decoded to common
events, and the usage of a ``/v1/messages`` pass-through read from its body or frames."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.anthropic import (
    DIALECT,
    FORWARDED_HEADERS,
    JSON_TOOL,
    MessagesDecoder,
    NativeUsage,
    native_body_usage,
    with_model,
)
from proxy.dialects.base import EventDecoder, Frame, Target
from proxy.errors import UpstreamStatusError, UpstreamUnreachable
from proxy.model import (
    ChatRequest,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

TOOL_USE_ID = "toolu_01A09q90qw90lq917835lq9"
# What the fake Messages API reported: 10 prompt tokens (2 of them cache reads), 5 output.
USAGE = {
    "input_tokens": 8,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 2,
    "output_tokens": 1,
}
TARGET = Target(model="claude-fake-1", provider="anthropic")


def stream_decoder(json_tool: bool = False) -> EventDecoder:
    body: dict[str, Any] = {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    if json_tool:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "r"}}
    return DIALECT.chat(msgspec.convert(body, ChatRequest), TARGET).stream_decoder()


# -- streams ------------------------------------------------------------------------------


def frame(name: str, data: dict[str, Any]) -> Frame:
    return Frame(data=orjson.dumps(data), event=name)


def stream_frames(case: str = "text", stop: bool = True) -> list[Frame]:
    """What the fake Messages API streams for ``case`` (text, tools, json or thinking)."""
    message: dict[str, Any] = {
        "id": "msg_01StreamFake",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-fake-1",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": USAGE,
    }
    frames = [
        frame("message_start", {"type": "message_start", "message": message}),
        frame("ping", {"type": "ping"}),
    ]

    def block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        frames.append(
            frame(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            frames.append(
                frame(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        frames.append(frame("content_block_stop", {"type": "content_block_stop", "index": index}))

    reason = "end_turn"
    pieces = ['{"city": ', '"Paris"}']
    json_pieces = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    if case == "tools":
        # Claude often says something before calling a tool: the tool is content block 1
        # but OpenAI's tool call 0.
        block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Checking."}])
        start = {"type": "tool_use", "id": TOOL_USE_ID, "name": "get_weather", "input": {}}
        block(1, start, json_pieces)
        reason = "tool_use"
    elif case == "json":
        start = {"type": "tool_use", "id": TOOL_USE_ID, "name": JSON_TOOL, "input": {}}
        block(0, start, json_pieces)
        reason = "tool_use"
    elif case == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": "hm"}]
        block(0, {"type": "thinking", "thinking": ""}, deltas)
        block(1, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "ok"}])
    else:
        block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in "po"])
    if stop:
        delta = {"stop_reason": reason, "stop_sequence": None}
        usage = {"output_tokens": 5}
        frames.append(
            frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        frames.append(frame("message_stop", {"type": "message_stop"}))
    return frames


def decode_stream(frames: list[Frame], json_tool: bool = False) -> list[StreamEvent]:
    decoder = stream_decoder(json_tool)
    events: list[StreamEvent] = []
    for item in frames:
        events += decoder.feed(item)
    events += decoder.finish()
    return events


def test_stream_reports_usage_even_when_the_client_did_not_ask() -> None:
    events = decode_stream(stream_frames())
    start, *deltas, finish, report = events
    assert isinstance(start, Start)
    assert (start.id, start.model) == ("chatcmpl-msg_01StreamFake", "claude-fake-1")
    assert deltas == [TextDelta("p"), TextDelta("o")]
    assert finish == Finish("stop")
    assert isinstance(report, UsageReport)
    reported = report.usage
    assert (reported.prompt_tokens, reported.cached_tokens, reported.completion_tokens) == (
        10,
        2,
        5,
    )


def test_streamed_tool_call_counts_only_calls_in_its_index() -> None:
    events = decode_stream(stream_frames("tools"))
    assert events[1:-2] == [
        TextDelta("Checking."),
        ToolCallDelta(index=0, id=TOOL_USE_ID, name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
    ]
    assert events[-2] == Finish("tool_calls")


def test_streamed_json_schema_tool_input_arrives_as_text_and_stops() -> None:
    events = decode_stream(stream_frames("json"), json_tool=True)
    assert events[1:-2] == [TextDelta('{"city": '), TextDelta('"Paris"}')]
    assert events[-2] == Finish("stop")


def test_streamed_thinking_becomes_reasoning_deltas() -> None:
    events = decode_stream(stream_frames("thinking"))
    assert events[1:3] == [ReasoningDelta("hm"), TextDelta("ok")]


def test_error_event_mid_stream_raises_a_retryable_error() -> None:
    frames = stream_frames(stop=False)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    decoder = stream_decoder()
    seen: list[StreamEvent] = []
    for item in frames:
        seen += decoder.feed(item)
    with pytest.raises(UpstreamStatusError) as info:
        decoder.feed(frame("error", error))
    assert TextDelta("p") in seen
    assert not any(isinstance(event, UsageReport) for event in seen)
    assert info.value.status == 503 and info.value.retryable
    assert info.value.message == "upstream overloaded: Overloaded"
    assert info.value.code == "overloaded_error"


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        pytest.param("rate_limit_error", 429, "slow down", id="rate-limit"),
        pytest.param("api_error", 502, "upstream error: slow down", id="other"),
    ],
)
def test_other_error_events_mid_stream(kind: str, status: int, message: str) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "slow down"}}
    with pytest.raises(UpstreamStatusError) as info:
        decode_stream([*stream_frames(stop=False), frame("error", error)])
    assert (info.value.status, info.value.message, info.value.code) == (status, message, kind)


def test_stream_cut_before_message_stop_is_an_error() -> None:
    start = {
        "type": "message_start",
        "message": {"id": "m", "usage": {"input_tokens": 3, "output_tokens": 1}},
    }
    decoder = stream_decoder()
    events = decoder.feed(frame("message_start", start))
    with pytest.raises(UpstreamUnreachable):
        decoder.finish()
    assert not any(isinstance(event, UsageReport) for event in events)


# -- native pass-through ------------------------------------------------------------------


def test_messages_request_passes_through_with_only_the_model_rewritten() -> None:
    native = (
        b'{"model":"claude","max_tokens":64,"messages":'
        b'[{"role":"user","content":[{"type":"text","text":"CASE text","cache_control":'
        b'{"type":"ephemeral"}}]}],"top_k":3}'
    )
    assert with_model(native, "claude-fake-1") == native.replace(b'"claude"', b'"claude-fake-1"')
    assert FORWARDED_HEADERS == (b"anthropic-beta",)


def test_native_reply_usage_is_read_from_the_body() -> None:
    body = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "content": [{"type": "text", "text": "pong"}],
            "usage": {**USAGE, "output_tokens": 5},
        }
    )
    reported = native_body_usage(body)
    assert reported is not None
    assert (reported.prompt_tokens, reported.cached_tokens, reported.completion_tokens) == (
        10,
        2,
        5,
    )
    assert native_body_usage(b"not json") is None
    assert native_body_usage(b'{"type":"message"}') is None


def test_native_stream_usage_is_sniffed_from_its_frames() -> None:
    sniffer = NativeUsage()
    frames = stream_frames("tools")
    for item in frames[:-2]:
        sniffer.feed(item)
    assert sniffer.usage is None  # final only once message_delta brought the output count
    for item in frames[-2:]:
        sniffer.feed(item)
    reported = sniffer.usage
    assert reported is not None
    assert (reported.prompt_tokens, reported.cached_tokens, reported.completion_tokens) == (
        10,
        2,
        5,
    )


def test_native_stream_frames_decode_to_events_named_by_the_upstream() -> None:
    decoder = MessagesDecoder("", json_tool=False)
    events = [event for item in stream_frames() for event in decoder.feed(item)]
    events += decoder.finish()
    start, report = events[0], events[-1]
    assert isinstance(start, Start) and start.model == "claude-fake-1"
    assert isinstance(report, UsageReport) and report.usage.total_tokens == 15
