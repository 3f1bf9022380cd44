"""The ``cohere`` dialect, inbound (``POST /v2/chat``): v2 chat requests decoded to
``ChatRequest``\\ s, replies and stream events encoded as Cohere's, errors in its shape; and
round trips through the outbound face."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.base import Frame, Inbound, Target
from proxy.dialects.cohere import DIALECT
from proxy.dialects.cohere.inbound import INBOUND, CohereInbound
from proxy.errors import InvalidRequest, NotFound, UpstreamStatusError
from proxy.model import (
    ChatReply,
    ChatRequest,
    Choice,
    Finish,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    ReasoningDelta,
    ResponseFormat,
    Start,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    UsageReport,
    usage,
)

MODEL = "command-a-03-2025"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {"id": "get_weather_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip


def decode(**body: Any) -> ChatRequest:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return INBOUND.decode_request(orjson.dumps(body))


def test_the_class_implements_inbound_named_cohere() -> None:
    inbound: Inbound = CohereInbound()
    assert inbound.name == "cohere"


# -- request -------------------------------------------------------------------------------
def test_messages_keep_their_roles_and_the_tool_plan_is_the_text() -> None:
    request = decode(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_plan": "I will check.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "get_weather_1",
             "content": [{"type": "text", "text": "sun"}, {"type": "text", "text": "ny"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "easy"},
                                              {"type": "text", "text": "Sunny."}]},
        ]
    )  # fmt: skip
    assert request.model == MODEL
    assert request.messages == [
        Message(role="system", content="be brief"),
        Message(role="user", content="weather?"),
        Message(
            role="assistant",
            content="I will check.",
            tool_calls=[
                ToolCall(
                    id="get_weather_1",
                    function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}'),
                )
            ],
        ),
        Message(role="tool", tool_call_id="get_weather_1", content="sunny"),
        Message(role="assistant", content="Sunny.", reasoning_content="easy"),
    ]


def test_user_content_blocks_become_parts_and_documents_text() -> None:
    request = decode(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png",
                                                        "detail": "low"}},
                    {"type": "document", "document": {"data": {"title": "T", "snippet": "S"}}},
                    {"type": "document", "document": {"data": "plain"}},
                ],
            }
        ]
    )  # fmt: skip
    assert request.messages[0].content == [
        TextPart(text="what is it?"),
        ImagePart(image_url=ImageURL(url="https://x.test/a.png", detail="low")),
        TextPart(text='{"title":"T","snippet":"S"}'),
        TextPart(text="plain"),
    ]


def test_a_call_without_id_or_arguments_gets_an_id_and_an_empty_object() -> None:
    request = decode(
        messages=[{"role": "assistant", "tool_calls": [{"function": {"name": "get_time"}}]}]
    )
    (call,) = request.messages[0].tool_calls or []
    assert call.id.startswith("call_") and call.function.arguments == "{}"
    assert request.messages[0].content is None


def test_tools_choice_sampling_and_limits_map_to_the_request() -> None:
    request = decode(
        tools=[WEATHER],
        strict_tools=True,
        tool_choice="REQUIRED",
        temperature=0.3,
        p=0.9,
        k=40,
        max_tokens=100,
        stop_sequences=["END"],
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        response_format={"type": "json_object"},
    )
    (tool,) = request.tools or []
    assert tool.function.name == "get_weather" and tool.function.strict is True
    assert tool.function.parameters == WEATHER["function"]["parameters"]
    assert request.tool_choice == "required"
    assert (request.temperature, request.top_p, request.top_k) == (0.3, 0.9, 40)
    assert (request.max_tokens, request.stop, request.seed) == (100, ["END"], 7)
    assert (request.frequency_penalty, request.presence_penalty) == (0.1, 0.2)
    assert request.response_format == ResponseFormat(type="json_object")
    assert decode(tool_choice="NONE").tool_choice == "none"
    assert decode().tool_choice is None and decode().tools is None


def test_a_json_schema_is_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = decode(response_format={"type": "json_object", "json_schema": schema})
    assert request.response_format == ResponseFormat(
        type="json_schema", json_schema={"name": "response", "schema": schema}
    )
    assert decode(response_format={"type": "text"}).response_format is None


def test_a_stream_always_asks_for_usage() -> None:
    request = decode(stream=True)
    assert request.stream is True and request.wants_usage
    assert decode(stream=False).stream is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"nope", None, id="not-json"),
        pytest.param(b"[1]", None, id="not-an-object"),
        pytest.param({"messages": [{"role": "user", "content": "a"}]}, "model", id="no-model"),
        pytest.param({"model": MODEL, "messages": []}, "messages", id="no-messages"),
        pytest.param({"model": MODEL, "messages": [1]}, "messages[0]", id="message-not-object"),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "chatbot", "content": "a"}]},
            "messages[0].role",
            id="unknown-role",
        ),
        pytest.param(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}],
            },
            "messages[0].content[0].type",
            id="unknown-block",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            id="tool-without-id",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
            "messages[0].tool_calls[0].function.name",
            id="call-without-name",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "user", "content": "a"}], "tool_choice": "AUTO"},
            "tool_choice",
            id="tool-choice",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "user", "content": "a"}], "p": "high"},
            "p",
            id="p",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "user", "content": "a"}], "max_tokens": 0},
            "max_tokens",
            id="max-tokens",
        ),
        pytest.param(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "a"}],
                "response_format": {"type": "xml"},
            },
            "response_format.type",
            id="response-format",
        ),
        pytest.param(
            {"model": MODEL, "messages": [{"role": "user", "content": "a"}], "tools": [{}]},
            "tools[0].function",
            id="tool-without-function",
        ),
    ],
)
def test_invalid_bodies_are_refused_naming_the_field(
    body: dict[str, Any] | bytes, param: str | None
) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequest) as caught:
        INBOUND.decode_request(raw)
    assert caught.value.param == param


# -- reply ---------------------------------------------------------------------------------
def chat_reply(message: Message, finish: str = "stop") -> ChatReply:
    return ChatReply(
        id="chatcmpl-r1",
        model=MODEL,
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage(70, 4, cached=5),
    )


def test_a_text_reply_is_a_v2_chat_response() -> None:
    body = orjson.loads(INBOUND.encode_reply(chat_reply(Message(role="assistant", content="Hi"))))
    assert body == {
        "id": "r1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
        "usage": {
            "billed_units": {"input_tokens": 70, "output_tokens": 4},
            "tokens": {"input_tokens": 70, "output_tokens": 4},
            "cached_tokens": 5,
        },
    }


def test_a_reply_that_calls_tools_carries_its_text_as_the_tool_plan() -> None:
    calls = [ToolCall(id="c1", function=FunctionCall(name="f", arguments={"a": 1}))]
    message = Message(role="assistant", content="Let me look.", tool_calls=calls,
                      reasoning_content="hm")  # fmt: skip
    body = orjson.loads(INBOUND.encode_reply(chat_reply(message, "tool_calls")))
    assert body["finish_reason"] == "TOOL_CALL"
    assert body["message"] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "hm"}],
        "tool_plan": "Let me look.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
        ],
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "COMPLETE"), ("length", "MAX_TOKENS"), ("tool_calls", "TOOL_CALL"),
     ("content_filter", "ERROR")],
)  # fmt: skip
def test_finish_reasons_map_to_cohere_names(finish: str, reason: str) -> None:
    message = Message(role="assistant", content="x")
    assert orjson.loads(INBOUND.encode_reply(chat_reply(message, finish)))["finish_reason"] == (
        reason
    )


def test_errors_are_cohere_messages() -> None:
    assert orjson.loads(INBOUND.encode_error(NotFound("no such model"))) == {
        "message": "no such model"
    }


# -- stream --------------------------------------------------------------------------------
def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    assert raw.endswith(b"\n\n")
    out = []
    for block in raw.split(b"\n\n")[:-1]:
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[len(b"data: ") :])
        assert payload["type"] == name[len(b"event: ") :].decode()
        out.append((payload["type"], payload))
    return out


STREAM: list[StreamEvent] = [
    Start(id="chatcmpl-m1", model=MODEL),
    ReasoningDelta("think"),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"ci'),
    ToolCallDelta(index=0, arguments='ty": "Paris"}'),
    ToolCallDelta(index=1, id="call_b", name="get_time", arguments=""),
    Finish("tool_calls"),
    UsageReport(usage(12, 8, cached=2)),
]


def encode_stream(events: list[StreamEvent]) -> bytes:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[], stream=True))
    return b"".join(encoder.encode(e) for e in events) + encoder.finish()


def test_a_stream_writes_cohere_typed_events() -> None:
    events = sse(encode_stream(STREAM))
    assert [name for name, _ in events] == [
        "message-start",
        "content-start", "content-delta", "content-end",
        "content-start", "content-delta", "content-delta", "content-end",
        "tool-call-start", "tool-call-delta", "tool-call-end",
        "tool-call-start", "tool-call-end",
        "message-end",
    ]  # fmt: skip
    payloads = [payload for _, payload in events]
    assert payloads[0]["id"] == "m1"
    assert payloads[0]["delta"]["message"]["role"] == "assistant"
    thinking = {"type": "thinking", "thinking": ""}
    assert payloads[1] == {"type": "content-start", "index": 0,
                           "delta": {"message": {"content": thinking}}}  # fmt: skip
    assert payloads[5] == {"type": "content-delta", "index": 1,
                           "delta": {"message": {"content": {"text": "Hel"}}}}  # fmt: skip
    assert payloads[8] == {
        "type": "tool-call-start",
        "index": 0,
        "delta": {"message": {"tool_calls": {"id": "call_a", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"ci'}}}},
    }  # fmt: skip
    assert payloads[9]["delta"]["message"]["tool_calls"] == {
        "function": {"arguments": 'ty": "Paris"}'}
    }
    assert payloads[-1] == {
        "type": "message-end",
        "delta": {
            "finish_reason": "TOOL_CALL",
            "usage": {
                "billed_units": {"input_tokens": 12, "output_tokens": 8},
                "tokens": {"input_tokens": 12, "output_tokens": 8},
                "cached_tokens": 2,
            },
        },
    }


def test_a_stream_without_start_still_opens_with_message_start() -> None:
    events = sse(encode_stream([TextDelta("hi"), Finish("length")]))
    assert events[0][0] == "message-start"
    assert events[-1][1]["delta"]["finish_reason"] == "MAX_TOKENS"


def test_an_error_mid_stream_is_a_message_end_with_an_error() -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[]))
    raw = encoder.encode(TextDelta("partial"))
    raw += encoder.error(UpstreamStatusError(502, "upstream broke"))
    events = sse(raw)
    assert [name for name, _ in events][-2:] == ["content-end", "message-end"]
    assert events[-1][1]["delta"] == {"finish_reason": "ERROR", "error": "upstream broke"}
    assert encoder.encode(TextDelta("late")) == b"" and encoder.finish() == b""


# -- round trips through the outbound face -------------------------------------------------
def test_inbound_decode_then_outbound_encode_gives_back_the_request() -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                    "detail": "low"}},
            ]},
            {"role": "assistant", "tool_plan": "I will check.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "get_weather_1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [WEATHER],
        "strict_tools": True,
        "tool_choice": "REQUIRED",
        "temperature": 0.3, "p": 0.9, "k": 40, "max_tokens": 100, "seed": 7,
        "stop_sequences": ["END"], "frequency_penalty": 0.1, "presence_penalty": 0.2,
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
        "stream": True,
    }  # fmt: skip
    request = INBOUND.decode_request(orjson.dumps(body))
    sent = orjson.loads(DIALECT.chat(request, Target(model=MODEL)).body)
    assert sent == body


def test_outbound_stream_decode_of_the_inbound_stream_gives_back_the_events() -> None:
    raw = encode_stream(STREAM)
    decoder = DIALECT.chat(ChatRequest(model=MODEL, messages=[]), Target(model=MODEL))
    stream = decoder.stream_decoder()
    events: list[StreamEvent] = []
    for block in raw.split(b"\n\n")[:-1]:
        name, data = block.split(b"\n")
        frame = Frame(
            data=data.removeprefix(b"data: "), event=name.removeprefix(b"event: ").decode()
        )
        events += stream.feed(frame)
    events += stream.finish()
    start = events[0]
    assert isinstance(start, Start) and (start.id, start.model) == ("chatcmpl-m1", MODEL)
    assert events[1:] == STREAM[1:]


def test_an_in_band_error_comes_back_as_an_upstream_error() -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[]))
    raw = encoder.encode(TextDelta("a")) + encoder.error(UpstreamStatusError(502, "broke"))
    stream = DIALECT.chat(ChatRequest(model=MODEL, messages=[]), Target(model=MODEL))
    decoder = stream.stream_decoder()
    frames = [
        Frame(data=b.split(b"\n")[1].removeprefix(b"data: ")) for b in raw.split(b"\n\n")[:-1]
    ]
    with pytest.raises(UpstreamStatusError) as caught:
        for frame in frames:
            decoder.feed(frame)
    assert caught.value.status == 502 and "broke" in caught.value.message
