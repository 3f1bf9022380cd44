"""``bedrock`` dialect: Converse request and reply translation both ways, stream events and
errors, as pure functions (signing, URLs and the event-stream framing are the engine's)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.base import Frame, Target
from proxy.dialects.bedrock import DIALECT, JSON_INSTRUCTION, JSON_TOOL, model_id, to_converse
from proxy.errors import InvalidRequest
from proxy.model import ChatReply, ChatRequest, StreamEvent
from proxy.upstream.eventstream import EventStreamDecoder

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TARGET = Target(model=MODEL_ID, provider="bedrock")
# A 1x1 PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
IMAGE_DATA_URL = "data:image/png;base64," + PNG_BASE64


_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def request(body: dict[str, Any]) -> ChatRequest:
    return msgspec.json.decode(orjson.dumps(body), type=ChatRequest)


def chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": content}], **extra}


def converse(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return to_converse(request(body))


def decode(body: dict[str, Any], reply: dict[str, Any]) -> ChatReply:
    return DIALECT.chat(request(body), TARGET).decode_reply(orjson.dumps(reply))


# -- frames, cut the way the engine cuts them ------------------------------------------------


def frames(*messages: bytes) -> list[Frame]:
    """Event-stream messages decoded into the ``Frame``\\ s the engine's framing makes."""
    decoded = EventStreamDecoder().feed(b"".join(messages))
    out = []
    for message in decoded:
        kind = message.header(":message-type") or "event"
        if kind == "error":
            name = message.header(":error-code")
            data = (message.header(":error-message") or "").encode()
        else:
            name = message.header(":event-type") or message.header(":exception-type")
            data = message.payload
        out.append(Frame(data=data, event=name, kind=kind))
    return out


def run(body: dict[str, Any], messages: list[bytes]) -> list[StreamEvent]:
    decoder = DIALECT.chat(request(body), TARGET).stream_decoder()
    events: list[StreamEvent] = []
    for frame in frames(*messages):
        events += decoder.feed(frame)
    events += decoder.finish()
    return events


# -- request translation ---------------------------------------------------------------------
def test_request_maps_system_turns_images_tools_and_tool_results() -> None:
    call = {
        "id": "tooluse_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": IMAGE_DATA_URL}},
                ],
            },
            {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 100,
        "stop": "END",
        "user": "user-42",
    }
    payload, json_tool = converse(body)
    assert json_tool is None
    assert payload["system"] == [{"text": "be brief"}, {"text": "be kind"}]
    assert payload["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "what is this?"},
                {"image": {"format": "png", "source": {"bytes": PNG_BASE64}}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        },
        # The tool result and the next user message merge: Converse wants turns to alternate.
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tooluse_1",
                        "content": [{"text": "sunny"}],
                        "status": "success",
                    }
                },
                {"text": "thanks"},
            ],
        },
    ]
    assert payload["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {
                        "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                    },
                    "description": "Weather in a city",
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }
    assert payload["inferenceConfig"] == {
        "maxTokens": 100,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert payload["requestMetadata"] == {"user": "user-42"}


def test_exchange_body_is_the_converse_json() -> None:
    exchange = DIALECT.chat(request(chat(max_tokens=64, top_k=5)), TARGET)
    assert orjson.loads(exchange.body) == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "inferenceConfig": {"maxTokens": 64},
        "additionalModelRequestFields": {"top_k": 5},
    }


def test_user_outside_the_metadata_alphabet_is_not_sent() -> None:
    payload, _ = converse(chat(user="a\u00e9b"))
    assert "requestMetadata" not in payload


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param("auto", {"auto": {}}, id="auto"),
        pytest.param("required", {"any": {}}, id="required"),
        pytest.param(
            {"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}}, id="named"
        ),
        pytest.param(None, None, id="absent"),
    ],
)
def test_tool_choice_maps_to_converse(choice: Any, expected: dict[str, Any] | None) -> None:
    extra: dict[str, Any] = {"tools": [_TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    payload, _ = converse(chat(**extra))
    assert payload["toolConfig"].get("toolChoice") == expected


def test_deprecated_function_call_names_a_tool() -> None:
    functions = [{"name": "f", "parameters": {"type": "object"}}]
    payload, _ = converse(chat(functions=functions, function_call={"name": "f"}))
    assert payload["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    assert payload["toolConfig"]["tools"][0]["toolSpec"]["name"] == "f"


def test_tool_choice_none_sends_no_tools() -> None:
    payload, _ = converse(chat(tools=[_TOOL], tool_choice="none"))
    assert "toolConfig" not in payload


def test_tool_history_without_tools_still_declares_them() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    body = {
        "model": "claude",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "t1", "content": "42"},
        ],
    }
    payload, _ = converse(body)
    (spec,) = payload["toolConfig"]["tools"]
    assert spec["toolSpec"]["name"] == "lookup"
    assert spec["toolSpec"]["inputSchema"] == {"json": {"type": "object", "properties": {}}}


def test_tool_history_keeps_its_tools_when_tool_choice_is_none() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": "claude",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "t1", "content": ""},
        ],
        "tools": [_TOOL],
        "tool_choice": "none",
    }
    payload, _ = converse(body)
    assert [s["toolSpec"]["name"] for s in payload["toolConfig"]["tools"]] == ["f"]
    assert "toolChoice" not in payload["toolConfig"]
    # An empty tool result is an empty content list.
    (result,) = payload["messages"][2]["content"]
    assert result["toolResult"]["content"] == []


def test_json_object_mode_is_an_instruction_in_the_system_prompt() -> None:
    payload, json_tool = converse(chat(response_format={"type": "json_object"}))
    assert json_tool is None
    assert payload["system"] == [{"text": JSON_INSTRUCTION}]


def test_json_schema_mode_forces_a_tool_and_answers_with_its_input_as_text() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    body = chat(
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    )
    payload, json_tool = converse(body)
    assert json_tool == JSON_TOOL
    (spec,) = payload["toolConfig"]["tools"]
    assert spec["toolSpec"]["inputSchema"]["json"] == schema
    assert payload["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "x", "name": JSON_TOOL, "input": {"ok": True}}}
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    }
    answer = decode(body, reply)
    assert orjson.loads(str(answer.message.content)) == {"ok": True}
    assert answer.message.tool_calls is None
    assert answer.finish_reason == "stop"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
            "data URLs",
            id="remote-image",
        ),
        pytest.param(
            [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}],
            "png, jpeg",
            id="tiff",
        ),
        pytest.param(
            [{"type": "input_audio", "input_audio": {"data": ""}}], "not supported", id="audio"
        ),
        pytest.param(
            [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            "not supported",
            id="audio-wav",
        ),
        pytest.param(
            [{"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}],
            "part type 'file' is not supported by bedrock/",
            id="file",
        ),
    ],
)
def test_unsupported_content_is_a_400(content: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        converse(chat(content))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(chat(n=2), "n", id="n"),
        pytest.param(
            {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            id="tool-without-id",
        ),
        pytest.param(
            {"model": "m", "messages": [{"role": "critic", "content": "x"}]},
            "messages[0].role",
            id="unknown-role",
        ),
        pytest.param(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}],
                    }
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
            id="bad-arguments",
        ),
    ],
)
def test_requests_converse_cannot_carry_are_a_400_naming_the_param(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.chat(request(body), TARGET)
    assert caught.value.param == param


def test_more_than_one_choice_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="`n`"):
        converse(chat(n=2))


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        pytest.param(MODEL_ID, MODEL_ID, id="plain"),
        pytest.param(f"converse/{MODEL_ID}", MODEL_ID, id="converse-prefix"),
        pytest.param("arn:aws:bedrock:us-east-1:1:inference-profile/x", None, id="arn"),
    ],
)
def test_model_id_strips_the_converse_prefix(upstream: str, expected: str | None) -> None:
    assert model_id(upstream) == (expected or upstream)
