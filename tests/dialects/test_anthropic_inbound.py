"""The ``anthropic`` dialect, inbound (``POST /v1/messages``): Messages requests decoded to
``ChatRequest``\\ s, replies and stream events encoded as Anthropic's, errors in its shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.anthropic import DIALECT
from proxy.dialects.base import Inbound
from proxy.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    RateLimited,
    TollwayError,
    UpstreamStatusError,
)
from proxy.model import (
    ChatReply,
    ChatRequest,
    Choice,
    Finish,
    FunctionCall,
    ImagePart,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    UsageReport,
    usage,
)

PNG_BASE64 = "iVBORw0KGgo="
TOOL_ARGS = {"city": "Paris"}
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
# 10 prompt tokens, 2 of them cached; 5 completion tokens.
USAGE = usage(10, 5, cached=2)


def decode(**body: Any) -> ChatRequest:
    payload = {"model": "gpt", "max_tokens": 64, **body}
    return DIALECT.decode_request(orjson.dumps(payload))


def test_the_dialect_is_an_inbound_dialect() -> None:
    inbound: Inbound = DIALECT
    assert inbound.name == "anthropic"


# -- request ------------------------------------------------------------------------------


def test_system_and_sampling_fields_become_chat_fields() -> None:
    request = decode(
        system="be brief",
        max_tokens=32,
        temperature=0.5,
        top_p=0.9,
        stop_sequences=["END"],
        metadata={"user_id": "u-7"},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert request.model == "gpt"
    assert request.messages == [
        Message(role="system", content="be brief"),
        Message(role="user", content="hi"),
    ]
    assert (request.max_tokens, request.temperature, request.top_p) == (32, 0.5, 0.9)
    assert request.stop == ["END"]
    assert request.user == "u-7"
    assert request.stream is None and request.stream_options is None


def test_system_blocks_are_joined_by_newlines() -> None:
    system = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    request = decode(system=system, messages=[{"role": "user", "content": "x"}])
    assert request.messages[0] == Message(role="system", content="one\ntwo")


def test_images_become_image_parts_and_text_documents_text() -> None:
    source = {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}
    content = [
        {"type": "text", "text": "CASE image"},
        {"type": "image", "source": source},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "document", "source": {"type": "text", "data": "doc"}},
    ]
    (message,) = decode(messages=[{"role": "user", "content": content}]).messages
    assert isinstance(message.content, list)
    text, data_image, url_image, document = message.content
    assert text == TextPart(text="CASE image")
    assert isinstance(data_image, ImagePart)
    assert data_image.image_url.url == "data:image/png;base64," + PNG_BASE64
    assert isinstance(url_image, ImagePart)
    assert url_image.image_url.url == "https://example.com/cat.png"
    assert document == TextPart(text="doc")


def test_text_blocks_alone_become_a_plain_string() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    (message,) = decode(messages=[{"role": "user", "content": content}]).messages
    assert message.content == "ab"


def test_tool_use_and_tool_result_round_trip() -> None:
    request = decode(
        tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "CASE tool_result"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": TOOL_ARGS,
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
    )
    assert [m.role for m in request.messages] == ["user", "assistant", "tool", "user"]
    assistant, tool = request.messages[1:3]
    assert assistant.content == "Checking."
    assert assistant.tool_calls is not None
    (call,) = assistant.tool_calls
    assert call.id == "toolu_1" and call.function.name == "get_weather"
    assert orjson.loads(call.arguments_text()) == TOOL_ARGS
    assert (tool.tool_call_id, tool.content) == ("toolu_1", "sunny")
    assert request.tools is not None
    (tool_spec,) = request.tools  # server tools have no place in chat
    assert tool_spec.function.name == "get_weather"
    assert tool_spec.function.description == "The weather in a city"
    assert tool_spec.function.parameters == WEATHER["input_schema"]
    assert request.tool_choice == "auto"
    assert request.parallel_tool_calls is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param({"type": "any"}, "required", id="any"),
        pytest.param({"type": "none"}, "none", id="none"),
        pytest.param(
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            id="named",
        ),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], expected: Any) -> None:
    request = decode(
        tools=[WEATHER], tool_choice=choice, messages=[{"role": "user", "content": "x"}]
    )
    assert request.tool_choice == expected


def test_tool_result_blocks_become_text_and_tool_schemas_default() -> None:
    result = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    request = decode(
        tools=[{"name": "f"}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": result}],
            }
        ],
    )
    assert request.messages == [Message(role="tool", tool_call_id="t", content="a\nb")]
    assert request.tools is not None
    assert request.tools[0].function.parameters == {"type": "object", "properties": {}}


def test_streams_always_ask_for_usage() -> None:
    request = decode(stream=True, messages=[{"role": "user", "content": "x"}])
    assert request.stream is True
    assert request.wants_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"{not json", None, id="not-json"),
        pytest.param(b"[]", None, id="not-an-object"),
        pytest.param(b'{"model":"m","max_tokens":5}', "messages", id="no-messages"),
        pytest.param(
            b'{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}',
            "max_tokens",
            id="zero-max-tokens",
        ),
        pytest.param(
            b'{"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]}',
            "max_tokens",
            id="text-max-tokens",
        ),
        pytest.param(b'{"model":"m","messages":["x"]}', "messages", id="message-not-object"),
        pytest.param(
            b'{"model":"m","messages":[{"role":"system","content":"x"}]}', "messages", id="role"
        ),
        pytest.param(b'{"messages":[{"role":"user","content":"x"}]}', "model", id="no-model"),
        pytest.param(
            b'{"model":"","messages":[{"role":"user","content":"x"}]}', "model", id="empty-model"
        ),
        pytest.param(b'{"model":"m","messages":[]}', "messages", id="no-message"),
    ],
)
def test_invalid_requests_are_refused_naming_the_field(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        DIALECT.decode_request(body)
    assert info.value.param == param
    assert info.value.status == 400


# -- reply --------------------------------------------------------------------------------


def chat_reply(message: Message, finish: str = "stop") -> ChatReply:
    return ChatReply(
        id="chatcmpl-1",
        model="gpt",
        choices=[Choice(message=message, finish_reason=finish)],
        usage=USAGE,
    )


def test_text_reply_is_a_message_with_anthropic_usage() -> None:
    body = orjson.loads(DIALECT.encode_reply(chat_reply(Message(role="assistant", content="hi"))))
    assert body == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 8,
            "cache_read_input_tokens": 2,
            "cache_creation_input_tokens": 0,
            "output_tokens": 5,
        },
    }


def test_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    calls = [
        ToolCall(
            id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}')
        ),
        ToolCall(id="call_2", function=FunctionCall(name="broken", arguments="{not json")),
    ]
    message = Message(role="assistant", content=None, tool_calls=calls)
    body = orjson.loads(DIALECT.encode_reply(chat_reply(message, "tool_calls")))
    assert body["stop_reason"] == "tool_use"
    assert body["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": TOOL_ARGS},
        {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}},
    ]


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish: str, stop_reason: str) -> None:
    reply = chat_reply(Message(role="assistant", content="x"), finish)
    assert orjson.loads(DIALECT.encode_reply(reply))["stop_reason"] == stop_reason


def test_a_reply_without_usage_reports_zero_tokens() -> None:
    reply = ChatReply(id="c", model="gpt", choices=[Choice(message=Message(role="assistant"))])
    body = orjson.loads(DIALECT.encode_reply(reply))
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert body["content"] == []


# -- stream -------------------------------------------------------------------------------


def encode_stream(events: list[StreamEvent]) -> list[tuple[str, dict[str, Any]]]:
    encoder = DIALECT.stream_encoder(
        decode(stream=True, messages=[{"role": "user", "content": "x"}])
    )
    raw = b"".join(encoder.encode(event) for event in events) + encoder.finish()
    assert encoder.finish() == b""  # the trailer comes once
    out = []
    for chunk in raw.split(b"\n\n")[:-1]:
        name, data = chunk.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[6:])
        assert payload["type"] == name[7:].decode()
        out.append((name[7:].decode(), payload))
    return out


def test_streamed_text_becomes_a_text_block_and_ends_with_usage() -> None:
    events = encode_stream(
        [
            Start(id="chatcmpl-9", model="gpt-fake"),
            TextDelta("po"),
            TextDelta("ng"),
            Finish("stop"),
            UsageReport(USAGE),
        ]
    )
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = events[0][1]["message"]
    assert (message["id"], message["model"], message["content"]) == ("msg_chatcmpl-9", "gpt", [])
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert (
        "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
        == "pong"
    )
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 5
    assert delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"] == 10


def test_streamed_thinking_text_and_tool_calls_each_get_a_block() -> None:
    events = encode_stream(
        [
            Start(id="c", model="gpt"),
            ReasoningDelta("hm"),
            TextDelta("Checking."),
            ToolCallDelta(index=0, id="call_1", name="get_weather"),
            ToolCallDelta(index=0, arguments='{"city": '),
            ToolCallDelta(index=0, arguments='"Paris"}'),
            ToolCallDelta(index=1, name="other", arguments="{}"),
            Finish("tool_calls"),
            UsageReport(USAGE),
        ]
    )
    starts = [data for name, data in events if name == "content_block_start"]
    assert [(s["index"], s["content_block"]) for s in starts] == [
        (0, {"type": "thinking", "thinking": ""}),
        (1, {"type": "text", "text": ""}),
        (2, {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}),
        (3, {"type": "tool_use", "id": "toolu_1", "name": "other", "input": {}}),
    ]
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert stops == [0, 1, 2, 3]
    deltas = [(d["index"], d["delta"]) for name, d in events if name == "content_block_delta"]
    assert deltas == [
        (0, {"type": "thinking_delta", "thinking": "hm"}),
        (1, {"type": "text_delta", "text": "Checking."}),
        (2, {"type": "input_json_delta", "partial_json": '{"city": '}),
        (2, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        (3, {"type": "input_json_delta", "partial_json": "{}"}),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_an_empty_stream_still_starts_and_stops() -> None:
    events = encode_stream([])
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["usage"] == {"input_tokens": 0, "output_tokens": 0}


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(InvalidRequest("bad"), "invalid_request_error", id="400"),
        pytest.param(AuthenticationFailed("bad"), "authentication_error", id="401"),
        pytest.param(NotFound("bad"), "not_found_error", id="404"),
        pytest.param(RateLimited("bad", retry_after=1), "rate_limit_error", id="429"),
        pytest.param(UpstreamStatusError(503, "bad"), "overloaded_error", id="503"),
        pytest.param(UpstreamStatusError(502, "bad"), "api_error", id="502"),
        pytest.param(TollwayError("bad"), "api_error", id="500"),
    ],
)
def test_errors_use_anthropics_shape(exc: TollwayError, kind: str) -> None:
    expected = {"type": "error", "error": {"type": kind, "message": "bad"}}
    assert orjson.loads(DIALECT.encode_error(exc)) == expected


def test_a_stream_error_is_an_error_event() -> None:
    encoder = DIALECT.stream_encoder(
        decode(stream=True, messages=[{"role": "user", "content": "x"}])
    )
    raw = encoder.error(UpstreamStatusError(503, "upstream overloaded: Overloaded"))
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    body = orjson.loads(raw[len(b"event: error\ndata: ") :])
    assert body["error"] == {
        "type": "overloaded_error",
        "message": "upstream overloaded: Overloaded",
    }
