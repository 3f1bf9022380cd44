"""``responses`` outbound: chat requests as Responses requests, ``response`` objects and
Responses SSE streams as replies and events, as pure functions; streams round-trip through
the inbound Responses encoder."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.base import Frame, Outbound, Target
from proxy.dialects.responses import DIALECT as INBOUND
from proxy.dialects.responses.outbound import OUTBOUND
from proxy.errors import (
    InvalidRequest,
    RateLimited,
    TollwayError,
    UpstreamStatusError,
    UpstreamUnreachable,
)
from proxy.model import (
    ChatRequest,
    Finish,
    FunctionCall,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    UsageReport,
    usage,
)
from proxy.upstream.framing import SSEFramer

TARGET = Target(model="gpt-5-mini", provider="openai")


def request(body: dict[str, Any]) -> ChatRequest:
    return msgspec.json.decode(orjson.dumps(body), type=ChatRequest)


def encode(body: dict[str, Any]) -> dict[str, Any]:
    payload = orjson.loads(OUTBOUND.chat(request(body), TARGET).body)
    assert isinstance(payload, dict)
    return payload


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "alias", "messages": list(messages), **extra}


def test_the_class_implements_outbound() -> None:
    outbound: Outbound = OUTBOUND
    assert outbound.name == "responses"


# -- requests --------------------------------------------------------------------------------
def test_a_full_chat_request_maps_onto_a_responses_request() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    body = chat(
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": [{"type": "text", "text": "be kind"}]},
        {"role": "developer", "content": "dev note"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JV", "filename": "a.pdf"},
                },
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        },
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        tools=[
            {
                "type": "function",
                "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
            },
            {"type": "function", "function": {"name": "g", "strict": True}},
        ],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=False,
        max_completion_tokens=100,
        temperature=0.2,
        top_p=0.9,
        user="u-1",
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert encode(body) == {
        "model": "gpt-5-mini",
        "instructions": "be brief\n\nbe kind",
        "input": [
            {"type": "message", "role": "developer", "content": "dev note"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                    {
                        "type": "input_file",
                        "file_data": "data:application/pdf;base64,JV",
                        "filename": "a.pdf",
                    },
                    {"type": "input_file", "file_id": "file-1"},
                ],
            },
            {"type": "message", "role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": "d",
                "parameters": {"type": "object"},
                "strict": False,
            },
            {
                "type": "function",
                "name": "g",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        ],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "name": "f"},
        "max_output_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "reasoning": {"effort": "low"},
        "stream": True,
        "store": False,
    }


def test_a_plain_request_is_minimal_and_never_stored() -> None:
    assert encode(chat({"role": "user", "content": "hi"})) == {
        "model": "gpt-5-mini",
        "input": [{"type": "message", "role": "user", "content": "hi"}],
        "store": False,
    }


def test_assistant_parts_are_output_text_and_max_tokens_is_the_output_limit() -> None:
    body = chat(
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
        max_tokens=7,
        stop=["x"],
        seed=1,
    )
    payload = encode(body)
    assert payload["input"][1] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "yo"}],
    }
    assert payload["max_output_tokens"] == 7
    assert "stop" not in payload and "seed" not in payload


@pytest.mark.parametrize(
    ("response_format", "text_format"),
    [
        pytest.param({"type": "json_object"}, {"type": "json_object"}, id="json_object"),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
            },
            {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True},
            id="json_schema",
        ),
    ],
)
def test_response_format_becomes_text_format(
    response_format: dict[str, Any], text_format: dict[str, Any]
) -> None:
    payload = encode(chat({"role": "user", "content": "hi"}, response_format=response_format))
    assert payload["text"] == {"format": text_format}


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_string_tool_choices_pass_through(choice: str) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = chat({"role": "user", "content": "hi"}, tools=tools, tool_choice=choice)
    assert encode(body)["tool_choice"] == choice


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(chat({"role": "user", "content": "x"}, n=2), "n", id="n"),
        pytest.param(
            chat(
                {
                    "role": "user",
                    "content": [{"type": "input_audio", "input_audio": {"data": "AA"}}],
                }
            ),
            "messages[0].content[0].type",
            id="audio",
        ),
        pytest.param(chat({"role": "oracle", "content": "x"}), "messages[0].role", id="role"),
    ],
)
def test_what_responses_cannot_carry_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        OUTBOUND.chat(request(body), TARGET)
    assert caught.value.param == param


# -- replies ---------------------------------------------------------------------------------
def response(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-5-mini-2025",
        "status": "completed",
        "output": [],
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 6,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 16,
        },
    }
    return {**base, **fields}


def decode(body: dict[str, Any]) -> Any:
    exchange = OUTBOUND.chat(request(chat({"role": "user", "content": "x"})), TARGET)
    return exchange.decode_reply(orjson.dumps(body))


def test_a_response_becomes_a_chat_reply() -> None:
    output = [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [
                {"type": "summary_text", "text": "first"},
                {"type": "summary_text", "text": "second"},
            ],
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Hel", "annotations": []},
                {"type": "output_text", "text": "lo"},
            ],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": '{"a":1}',
            "status": "completed",
        },
    ]
    reply = decode(response(output=output))
    assert reply.id == "chatcmpl-resp_1"
    assert reply.model == "gpt-5-mini-2025"
    assert reply.created == 1700000000
    assert reply.message.content == "Hello"
    assert reply.message.reasoning_content == "first\n\nsecond"
    assert reply.message.tool_calls == [
        ToolCall(id="call_1", function=FunctionCall(name="f", arguments='{"a":1}'))
    ]
    assert reply.finish_reason == "tool_calls"
    assert reply.usage == usage(10, 6, cached=4, reasoning=2)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        pytest.param("max_output_tokens", "length", id="length"),
        pytest.param("content_filter", "content_filter", id="content_filter"),
    ],
)
def test_an_incomplete_response_finishes_for_its_reason(reason: str, finish: str) -> None:
    reply = decode(response(status="incomplete", incomplete_details={"reason": reason}))
    assert reply.finish_reason == finish
    assert reply.message.content == ""


def test_a_refusal_is_the_message_text() -> None:
    output = [{"type": "message", "content": [{"type": "refusal", "refusal": "no"}]}]
    assert decode(response(output=output)).message.content == "no"


def test_a_failed_response_raises_and_a_body_that_is_not_one_is_unreachable() -> None:
    failed = response(status="failed", error={"code": "rate_limit_exceeded", "message": "slow"})
    with pytest.raises(UpstreamStatusError) as caught:
        decode(failed)
    assert (caught.value.status, caught.value.message) == (429, "slow")
    exchange = OUTBOUND.chat(request(chat({"role": "user", "content": "x"})), TARGET)
    with pytest.raises(UpstreamUnreachable):
        exchange.decode_reply(b"[]")


def test_faults_read_openai_error_bodies() -> None:
    body = orjson.dumps(
        {"error": {"message": "bad", "type": "invalid_request_error", "param": "input"}}
    )
    fault = OUTBOUND.fault(400, body)
    assert (fault.status, fault.message, fault.type, fault.param) == (
        400,
        "bad",
        "invalid_request_error",
        "input",
    )


# -- streams ---------------------------------------------------------------------------------
def sse(kind: str, **fields: Any) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"
    )


def run(wire: bytes, step: int = 5) -> list[StreamEvent]:
    """SSE bytes cut every ``step`` bytes → the engine's framer → the decoder."""
    framer = SSEFramer()
    decoder = OUTBOUND.chat(
        request(chat({"role": "user", "content": "x"})), TARGET
    ).stream_decoder()
    events: list[StreamEvent] = []
    for cut in range(0, len(wire), step):
        for frame in framer.feed(wire[cut : cut + step]):
            events += decoder.feed(frame)
    for frame in framer.finish():
        events += decoder.feed(frame)
    events += decoder.finish()
    return events


def encoded(events: list[StreamEvent], body: dict[str, Any] | None = None) -> bytes:
    """The inbound Responses encoder's SSE bytes for ``events``."""
    encoder = INBOUND.stream_encoder(request(body or chat({"role": "user", "content": "x"})))
    return b"".join(encoder.encode(e) for e in events) + encoder.finish()


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(
            [TextDelta("Hel"), TextDelta("lo"), Finish("stop"), UsageReport(usage(9, 4, cached=3))],
            id="text",
        ),
        pytest.param(
            [
                TextDelta("Checking."),
                ToolCallDelta(index=0, id="call_1", name="f"),
                ToolCallDelta(index=0, arguments='{"a"'),
                ToolCallDelta(index=0, arguments=":1}"),
                ToolCallDelta(index=1, id="call_2", name="g"),
                ToolCallDelta(index=1, arguments="{}"),
                Finish("tool_calls"),
                UsageReport(usage(20, 8, reasoning=3)),
            ],
            id="calls",
        ),
        pytest.param([TextDelta("cut"), Finish("length"), UsageReport(usage(5, 5))], id="length"),
        pytest.param(
            [TextDelta("bad"), Finish("content_filter"), UsageReport(usage(5, 1))],
            id="content_filter",
        ),
    ],
)
def test_a_stream_round_trips_through_the_inbound_encoder(events: list[StreamEvent]) -> None:
    body = chat({"role": "user", "content": "x"}, model="gpt-alias")
    decoded = run(encoded([Start(id="chatcmpl-1", model="gpt-alias"), *events], body))
    start = decoded[0]
    assert isinstance(start, Start)
    assert start.id.startswith("chatcmpl-resp_")
    assert start.model == "gpt-alias"
    assert decoded[1:] == events


def test_reasoning_summaries_stream_as_reasoning_separated_by_blank_lines() -> None:
    wire = b"".join(
        (
            sse("response.created", response=response(status="in_progress", usage=None)),
            sse(
                "response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="a"
            ),
            sse(
                "response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="b"
            ),
            sse(
                "response.reasoning_summary_text.delta", output_index=0, summary_index=1, delta="c"
            ),
            sse("response.output_text.delta", output_index=1, content_index=0, delta="done"),
            sse("response.completed", response=response()),
        )
    )
    assert run(wire)[1:] == [
        ReasoningDelta("a"),
        ReasoningDelta("b"),
        ReasoningDelta("\n\nc"),
        TextDelta("done"),
        Finish("stop"),
        UsageReport(usage(10, 6, cached=4, reasoning=2)),
    ]


def test_a_call_whose_arguments_come_only_whole_still_gets_them() -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "f",
        "arguments": "",
    }
    wire = b"".join(
        (
            sse("response.created", response=response(status="in_progress", usage=None)),
            sse("response.output_item.added", output_index=0, item=item),
            sse("response.function_call_arguments.done", output_index=0, arguments='{"a":1}'),
            sse("response.output_item.done", output_index=0, item={**item, "arguments": '{"a":1}'}),
            sse("response.completed", response=response(usage=None)),
        )
    )
    assert run(wire)[1:] == [
        ToolCallDelta(index=0, id="call_1", name="f"),
        ToolCallDelta(index=0, arguments='{"a":1}'),
        Finish("tool_calls"),
    ]


def test_the_start_names_the_upstream_response_and_model() -> None:
    wire = sse("response.created", response=response(status="in_progress")) + sse(
        "response.completed", response=response()
    )
    start = run(wire)[0]
    assert isinstance(start, Start)
    assert (start.id, start.model) == ("chatcmpl-resp_1", "gpt-5-mini-2025")


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        pytest.param(RateLimited("slow down", retry_after=1), 429, id="rate-limit"),
        pytest.param(InvalidRequest("bad"), 400, id="invalid"),
        pytest.param(TollwayError("boom"), 502, id="server"),
    ],
)
def test_a_failed_stream_raises_what_the_failure_stands_for(exc: TollwayError, status: int) -> None:
    encoder = INBOUND.stream_encoder(request(chat({"role": "user", "content": "x"})))
    wire = encoder.encode(TextDelta("x")) + encoder.error(exc)
    with pytest.raises(UpstreamStatusError) as caught:
        run(wire)
    assert caught.value.status == status
    assert exc.message in caught.value.message


def test_response_failed_alone_raises_with_its_error() -> None:
    failed = response(status="failed", error={"code": "server_error", "message": "oops"})
    with pytest.raises(UpstreamStatusError) as caught:
        run(sse("response.failed", response=failed))
    assert caught.value.status == 502
    assert caught.value.retryable


def test_a_stream_cut_before_completion_is_unreachable() -> None:
    wire = sse("response.created", response=response()) + sse(
        "response.output_text.delta", delta="x"
    )
    with pytest.raises(UpstreamUnreachable):
        run(wire)


def test_frames_that_are_not_json_events_are_skipped() -> None:
    decoder = OUTBOUND.chat(
        request(chat({"role": "user", "content": "x"})), TARGET
    ).stream_decoder()
    assert decoder.feed(Frame(data=b"not json")) == []
    assert decoder.feed(Frame(data=b"[DONE]")) == []
