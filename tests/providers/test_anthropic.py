"""The ``anthropic/`` adapter: request and reply translation, streams, errors, pass-through.

Wire tests run the adapter over a real socket against the fake Messages API of
``harness_anthropic`` (its own instance, on port 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import yaml

from proxy.config import RouterSettings, parse_config
from proxy.errors import UpstreamStatusError, UpstreamUnreachable
from proxy.formats.anthropic import parse_messages
from proxy.request import Kind, parse
from proxy.providers import build_deployment
from proxy.providers.anthropic import AnthropicProvider, anthropic_error, translate_message
from proxy.providers.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    JSON_INSTRUCTION,
    JSON_TOOL,
    build_messages_request,
)
from proxy.providers.base import Deployment, Reply
from proxy.server.settings import Settings
from proxy.upstream.transport import AiohttpTransport
from tests.providers.conformance import IMAGE_DATA_URL, IMAGE_URL, PNG_BASE64
from tests.providers.harness_anthropic import AnthropicHarness


def deployment(api_base: str = "", **params: Any) -> Deployment:
    litellm = {"model": "anthropic/claude-fake-1", "api_key": "sk-ant-secret-abcdef123456"}
    if api_base:
        litellm["api_base"] = api_base
    info = params.pop("model_info", {})
    litellm.update(params)
    entry = {"model_name": "claude", "litellm_params": litellm, "model_info": info}
    config = parse_config(yaml.safe_dump({"model_list": [entry]}), "t.yaml", {})
    return build_deployment(0, config.model_list[0], RouterSettings(), Settings())


def translate(body: dict[str, Any], **params: Any) -> dict[str, Any]:
    return build_messages_request(
        {"model": "claude", **body}, deployment(**params), "claude-fake-1"
    )


# -- request ------------------------------------------------------------------------------


def test_default_base_and_messages_url() -> None:
    assert AnthropicProvider.url(deployment()) == "https://api.anthropic.com/v1/messages"
    assert AnthropicProvider.url(deployment("http://h:1/v1")) == "http://h:1/v1/messages"


def test_system_messages_become_system_blocks_and_max_tokens_defaults() -> None:
    out = translate(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert out["system"] == [{"type": "text", "text": "be brief"}]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS
    limited = translate(
        {"messages": [{"role": "user", "content": "hi"}]}, model_info={"max_output_tokens": 77}
    )
    assert limited["max_tokens"] == 77
    asked = translate({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9})
    assert asked["max_tokens"] == 9


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


def test_sampling_stop_and_user_fields() -> None:
    out = translate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "u-42",
            "stream": True,
        }
    )
    assert out["temperature"] == 0.2
    assert out["top_p"] == 0.9
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
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    if stop_reason == "tool_use":
        content.append({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}})
    body, _ = translate_message(
        {"id": "m1", "content": content, "stop_reason": stop_reason, "usage": {}}, "claude"
    )
    choice = orjson.loads(body)["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "hi"
    if stop_reason == "tool_use":
        (call,) = choice["message"]["tool_calls"]
        assert call == {
            "id": "t1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a":[1]}'},
        }


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 20,
        "output_tokens": 7,
    }
    body, reported = translate_message(
        {"id": "m", "content": [], "stop_reason": "end_turn", "usage": usage}, "claude"
    )
    assert reported is not None
    assert (reported.prompt_tokens, reported.cached_tokens, reported.completion_tokens) == (
        150,
        30,
        7,
    )
    assert orjson.loads(body)["usage"]["total_tokens"] == 157


def test_json_schema_tool_comes_back_as_text() -> None:
    content = [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"ok": True}}]
    body, _ = translate_message(
        {"id": "m", "content": content, "stop_reason": "tool_use", "usage": {}}, "c", True
    )
    choice = orjson.loads(body)["choices"][0]
    assert choice["message"]["content"] == '{"ok":true}'
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_529_overloaded_is_a_retryable_503_and_errors_never_carry_the_key() -> None:
    dep = deployment()
    raw = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})
    err = anthropic_error(529, raw, "4", dep)
    assert isinstance(err, UpstreamStatusError)
    assert err.status == 503 and err.retryable
    assert err.headers == {"retry-after": "4"}
    assert "Busy" in err.message
    leak = f"invalid x-api-key: {dep.api_key}"
    raw = orjson.dumps(
        {"type": "error", "error": {"type": "authentication_error", "message": leak}}
    )
    err = anthropic_error(401, raw, None, dep)
    assert err.status == 401 and err.type == "authentication_error"
    assert dep.api_key is not None and dep.api_key not in err.body().decode()


# -- over the wire ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicHarness]:
    server = AnthropicHarness()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    transport = AiohttpTransport(pool_size=4)
    yield AnthropicProvider(transport)
    await transport.close()


def wire_deployment(fake: AnthropicHarness) -> Deployment:
    return deployment(fake.origin, api_key=fake.api_key)


def chat(case: str, **extra: Any) -> bytes:
    return orjson.dumps(
        {"model": "claude", "messages": [{"role": "user", "content": f"CASE {case}"}], **extra}
    )


async def drain(reply: Reply) -> bytes:
    assert reply.chunks is not None
    try:
        return b"".join([chunk async for chunk in reply.chunks])
    finally:
        reply.close()


async def test_stream_without_include_usage_has_no_usage_chunk_but_bills(
    fake: AnthropicHarness, provider: AnthropicProvider
) -> None:
    request = parse(Kind.CHAT, chat("stream_text", stream=True))
    reply = await provider.send(request, wire_deployment(fake), "claude-fake-1")
    raw = await drain(reply)
    assert b'"usage"' not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)
    assert "x-api-key" in fake.last_received().headers
    assert fake.api_key not in fake.last_received().path


async def test_error_event_mid_stream_raises_a_retryable_error(
    fake: AnthropicHarness, provider: AnthropicProvider
) -> None:
    request = parse(Kind.CHAT, chat("stream_error", stream=True))
    reply = await provider.send(request, wire_deployment(fake), "claude-fake-1")
    assert reply.chunks is not None
    seen = b""
    with pytest.raises(UpstreamStatusError) as info:
        async for chunk in reply.chunks:
            seen += chunk
    reply.close()
    assert b'"content":"po"' in seen
    assert info.value.status == 503 and info.value.retryable
    assert reply.final_usage() is None


async def test_upstream_529_and_429_reach_the_router_as_retryable(
    fake: AnthropicHarness, provider: AnthropicProvider
) -> None:
    for case, status, retry_after in (("error_529", 503, "3"), ("error_429", 429, "3")):
        with pytest.raises(UpstreamStatusError) as info:
            await provider.send(
                parse(Kind.CHAT, chat(case)), wire_deployment(fake), "claude-fake-1"
            )
        assert info.value.status == status
        assert info.value.retryable
        assert info.value.headers["retry-after"] == retry_after


async def test_messages_request_passes_through_as_bytes(
    fake: AnthropicHarness, provider: AnthropicProvider
) -> None:
    native = (
        b'{"model":"claude","max_tokens":64,"messages":'
        b'[{"role":"user","content":[{"type":"text","text":"CASE text","cache_control":'
        b'{"type":"ephemeral"}}]}],"top_k":3}'
    )
    request = parse_messages(native, {"anthropic-beta": "prompt-caching-2024-07-31"})
    reply = await provider.send(request, wire_deployment(fake), "claude-fake-1")
    assert request.answered_natively
    received = fake.last_received()
    assert received.raw == native.replace(b'"claude"', b'"claude-fake-1"')
    assert received.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    payload = orjson.loads(reply.body or b"")
    assert payload["type"] == "message"
    assert payload["content"] == [{"type": "text", "text": "pong"}]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (10, 2)


async def test_messages_stream_passes_through_and_usage_is_sniffed(
    fake: AnthropicHarness, provider: AnthropicProvider
) -> None:
    native = orjson.dumps(
        {
            "model": "claude",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "CASE stream_tools"}],
        }
    )
    request = parse_messages(native)
    reply = await provider.send(request, wire_deployment(fake), "claude-fake-1")
    raw = await drain(reply)
    assert raw.startswith(b"event: message_start\n")
    assert b"event: message_stop" in raw
    assert b"input_json_delta" in raw
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)


async def test_stream_cut_before_message_stop_is_an_error(
    provider: AnthropicProvider,
) -> None:
    class Cut:
        status = 200

        def header(self, name: str) -> str | None:
            return "text/event-stream" if name == "content-type" else None

        async def read(self) -> bytes:
            return b""

        async def iter_chunks(self) -> AsyncIterator[bytes]:
            yield b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
            yield b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'

        def close(self) -> None:
            pass

    class Transport:
        async def post(self, *args: Any) -> Cut:
            return Cut()

        async def close(self) -> None:
            pass

    cut = AnthropicProvider(Transport())  # type: ignore[arg-type]
    reply = await cut.send(parse(Kind.CHAT, chat("x", stream=True)), deployment(), "claude")
    assert reply.chunks is not None
    with pytest.raises(UpstreamUnreachable):
        async for _ in reply.chunks:
            pass
    assert reply.final_usage() is None
