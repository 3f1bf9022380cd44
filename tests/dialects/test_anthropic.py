"""The ``anthropic`` dialect, outbound: Messages requests built from ``ChatRequest``\\ s,
``message`` replies decoded to ``ChatReply``\\ s, and error replies as faults (streams are in
``test_anthropic_stream``)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.anthropic import (
    DEFAULT_MAX_TOKENS,
    DIALECT,
    JSON_INSTRUCTION,
    JSON_TOOL,
)
from proxy.dialects.base import ChatExchange, Outbound, Target
from proxy.errors import UpstreamUnreachable
from proxy.model import ChatReply, ChatRequest

PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
    "60e6kgAAAABJRU5ErkJggg=="
)
IMAGE_DATA_URL = "data:image/png;base64," + PNG_BASE64
IMAGE_URL = "https://example.com/cat.png"
TARGET = Target(model="claude-fake-1", provider="anthropic")


def translate(body: dict[str, Any], target: Target = TARGET) -> dict[str, Any]:
    request = msgspec.convert({"model": "claude", **body}, ChatRequest)
    result: dict[str, Any] = orjson.loads(DIALECT.chat(request, target).body)
    return result


def exchange(json_tool: bool = False) -> ChatExchange:
    """The exchange of a one-message chat, in JSON-schema mode when ``json_tool``."""
    body: dict[str, Any] = {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    if json_tool:
        spec = {"name": "r", "schema": {"type": "object"}}
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return DIALECT.chat(msgspec.convert(body, ChatRequest), TARGET)


def reply(payload: dict[str, Any], json_tool: bool = False) -> ChatReply:
    return exchange(json_tool).decode_reply(orjson.dumps(payload))


def test_the_dialect_is_an_outbound_dialect() -> None:
    outbound: Outbound = DIALECT
    assert outbound.name == "anthropic"


# -- request ------------------------------------------------------------------------------


def test_system_messages_become_system_blocks_and_max_tokens_defaults() -> None:
    out = translate(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert out["model"] == "claude-fake-1"
    assert out["system"] == [{"type": "text", "text": "be brief"}]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS
    limited = translate(
        {"messages": [{"role": "user", "content": "hi"}]},
        Target(model="claude-fake-1", max_output_tokens=77),
    )
    assert limited["max_tokens"] == 77
    asked = translate({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9})
    assert asked["max_tokens"] == 9
    newer = translate(
        {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 11}
    )
    assert newer["max_tokens"] == 11


def test_images_data_urls_become_base64_and_http_urls_url_sources() -> None:
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": IMAGE_DATA_URL}},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    ]
    out = translate({"messages": [{"role": "user", "content": parts}]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64},
        },
        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
    ]


def test_cache_control_on_parts_and_tools_is_kept() -> None:
    ephemeral = {"type": "ephemeral"}
    parts = [
        {"type": "text", "text": "long", "cache_control": ephemeral},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}, "cache_control": ephemeral},
    ]
    tool = {"type": "function", "function": {"name": "f"}, "cache_control": ephemeral}
    out = translate(
        {
            "messages": [
                {"role": "system", "content": parts[:1]},
                {"role": "user", "content": parts},
            ],
            "tools": [tool],
        }
    )
    assert out["system"] == [{"type": "text", "text": "long", "cache_control": ephemeral}]
    assert [b["cache_control"] for b in out["messages"][0]["content"]] == [ephemeral] * 2
    assert out["tools"][0]["cache_control"] == ephemeral


def test_tool_round_trip_becomes_tool_use_and_merged_tool_results() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    out = translate(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "calling", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "tool", "tool_call_id": "c2", "content": "two"},
                {"role": "user", "content": "thanks"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "F"}},
                {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}},
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
    ]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "one"}]},
        {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "two"}]},
        {"type": "text", "text": "thanks"},
    ]
    assert out["tools"] == [
        {"name": "f", "input_schema": {"type": "object", "properties": {}}, "description": "F"},
        {"name": "g", "input_schema": {"type": "object"}},
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param("not json", {"arguments": "not json"}, id="text-wrapped"),
        pytest.param("[1, 2]", {"value": [1, 2]}, id="non-object-wrapped"),
        pytest.param({"a": 1}, {"a": 1}, id="object-as-is"),
    ],
)
def test_tool_call_arguments_that_are_not_an_object_are_wrapped(
    arguments: Any, expected: dict[str, Any]
) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    out = translate({"messages": [{"role": "assistant", "tool_calls": [call]}]})
    assert out["messages"][0]["content"][0]["input"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param("auto", {"type": "auto"}, id="auto"),
        pytest.param("none", {"type": "none"}, id="none"),
        pytest.param(
            {"type": "function", "function": {"name": "f"}},
            {"type": "tool", "name": "f"},
            id="named",
        ),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}
    assert translate(body)["tool_choice"] == expected


def test_tool_choice_without_tools_is_dropped_unless_none() -> None:
    messages = [{"role": "user", "content": "x"}]
    assert "tool_choice" not in translate({"messages": messages, "tool_choice": "auto"})
    none = translate({"messages": messages, "tool_choice": "none"})
    assert none["tool_choice"] == {"type": "none"}


def test_sampling_stop_and_user_fields() -> None:
    out = translate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 3,
            "stop": "END",
            "user": "u-42",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert out["temperature"] == 0.2
    assert out["top_p"] == 0.9
    assert out["top_k"] == 3
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-42"}
    assert out["stream"] is True
    assert "stream_options" not in out


def test_json_object_mode_is_a_system_instruction_and_json_schema_a_forced_tool() -> None:
    messages = [{"role": "user", "content": "x"}]
    out = translate({"messages": messages, "response_format": {"type": "json_object"}})
    assert out["system"][-1] == {"type": "text", "text": JSON_INSTRUCTION}
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    out = translate(
        {
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": schema},
            },
        }
    )
    assert out["tools"][-1]["name"] == JSON_TOOL
    assert out["tools"][-1]["input_schema"] == schema
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


# -- reply --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    if stop_reason == "tool_use":
        content.append({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}})
    decoded = reply({"id": "m1", "content": content, "stop_reason": stop_reason, "usage": {}})
    assert decoded.id == "chatcmpl-m1"
    assert decoded.model == "claude-fake-1"
    assert decoded.finish_reason == finish
    assert decoded.message.content == "hi"
    if stop_reason == "tool_use":
        assert decoded.message.tool_calls is not None
        (call,) = decoded.message.tool_calls
        assert (call.id, call.type, call.function.name) == ("t1", "function", "f")
        assert call.function.arguments == '{"a":[1]}'


def test_thinking_becomes_reasoning_content() -> None:
    content = [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "42"},
    ]
    decoded = reply({"id": "m", "model": "claude-x", "content": content, "stop_reason": "end_turn"})
    assert decoded.message.reasoning_content == "hmm"
    assert decoded.message.content == "42"
    assert decoded.model == "claude-x"
    assert decoded.usage is None


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 20,
        "output_tokens": 7,
    }
    decoded = reply({"id": "m", "content": [], "stop_reason": "end_turn", "usage": usage})
    reported = decoded.usage
    assert reported is not None
    assert (reported.prompt_tokens, reported.cached_tokens, reported.completion_tokens) == (
        150,
        30,
        7,
    )
    assert reported.total_tokens == 157


def test_json_schema_tool_comes_back_as_text() -> None:
    content = [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"ok": True}}]
    decoded = reply(
        {"id": "m", "content": content, "stop_reason": "tool_use", "usage": {}}, json_tool=True
    )
    assert decoded.message.content == '{"ok":true}'
    assert decoded.message.tool_calls is None
    assert decoded.finish_reason == "stop"


def test_a_reply_that_is_not_json_is_unreachable() -> None:
    with pytest.raises(UpstreamUnreachable):
        exchange().decode_reply(b"<html>bad gateway</html>")


# -- errors -------------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def test_529_overloaded_answers_as_a_retryable_503() -> None:
    fault = DIALECT.fault(529, error_body("overloaded_error", "Busy"))
    assert fault.status == 529
    assert fault.answer_status == 503
    assert fault.code == "overloaded_error"
    assert fault.type == "upstream_error"
    assert fault.message == "upstream overloaded (529): Busy"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(400, "invalid_request_error", id="400"),
        pytest.param(401, "authentication_error", id="401"),
        pytest.param(429, "rate_limit_error", id="429"),
        pytest.param(500, "api_error", id="500"),
    ],
)
def test_error_replies_keep_anthropics_status_type_and_message(status: int, kind: str) -> None:
    fault = DIALECT.fault(status, error_body(kind, "went wrong"))
    assert (fault.status, fault.type, fault.message) == (status, kind, "went wrong")
    assert fault.answer_status is None


def test_an_error_reply_that_is_not_json_names_the_status() -> None:
    fault = DIALECT.fault(502, b"<html>")
    assert fault.message == "the upstream returned HTTP 502"
    assert fault.type is None
