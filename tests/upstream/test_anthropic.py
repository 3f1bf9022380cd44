"""``anthropic/`` through the engine: URLs, headers, errors, streams and the native pass-through.

The translation itself (system blocks, images, tools, tool choice, sampling fields, JSON
modes, stop reasons) is the anthropic dialect's and is tested in ``tests/dialects``; here a
few of those cases run end to end to prove the engine wires the deployment into them and the
client gets OpenAI bytes back. Wire tests run the engine over a real socket against the fake
Messages API of ``harness_anthropic`` (its own instance, on port 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import yaml

from proxy.config import RouterSettings, parse_config
from proxy.dialects.anthropic import DEFAULT_MAX_TOKENS
from proxy.dialects.openai import parse
from proxy.errors import UpstreamStatusError, UpstreamUnreachable
from proxy.pipeline.formats import InboundFormat, MessagesFormat
from proxy.request import Kind, ParsedRequest
from proxy.server.settings import Settings
from proxy.upstream.aiohttp_transport import AiohttpTransport
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import Engine, Reply
from proxy.upstream.providers import build_deployment
from tests.providers.harness_anthropic import AnthropicHarness
from tests.providers.scripted import Canned, ScriptedTransport, client_body, collect

KEY = "sk-ant-secret-abcdef123456"


def deployment(api_base: str = "", **params: Any) -> Deployment:
    litellm = {"model": "anthropic/claude-fake-1", "api_key": KEY}
    if api_base:
        litellm["api_base"] = api_base
    info = params.pop("model_info", {})
    litellm.update(params)
    entry = {"model_name": "claude", "litellm_params": litellm, "model_info": info}
    config = parse_config(yaml.safe_dump({"model_list": [entry]}), "t.yaml", {})
    return build_deployment(0, config.model_list[0], RouterSettings(), Settings())


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> Any:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake-1",
        "content": content,
        "stop_reason": stop_reason,
        "usage": usage,
    }


OK = message([{"type": "text", "text": "ok"}], input_tokens=1, output_tokens=1)


async def scripted(
    body: dict[str, Any], canned: Canned | None = None, **params: Any
) -> tuple[Reply, ParsedRequest, ScriptedTransport]:
    transport = ScriptedTransport(canned or Canned.json(OK))
    request = parse(Kind.CHAT, orjson.dumps({"model": "claude", **body}))
    reply = await Engine(transport).send(request, deployment(**params), "claude-fake-1")
    return reply, request, transport


HI = [{"role": "user", "content": "hi"}]


# -- request ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        pytest.param("", "https://api.anthropic.com/v1/messages", id="default"),
        pytest.param("http://h:1/v1", "http://h:1/v1/messages", id="v1"),
        pytest.param("http://h:1/v1/", "http://h:1/v1/messages", id="v1-slash"),
        pytest.param("http://h:1", "http://h:1/v1/messages", id="origin"),
    ],
)
async def test_default_base_and_messages_url(api_base: str, url: str) -> None:
    _, _, transport = await scripted({"messages": HI}, api_base=api_base)
    assert transport.last.url == url


async def test_the_key_goes_in_x_api_key_with_the_version_and_never_in_the_url() -> None:
    _, _, transport = await scripted(
        {"messages": HI}, extra_headers={"x-api-key": "from-extras", "x-extra": "1"}
    )
    headers = transport.last.headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-extra"] == "1"
    assert "authorization" not in headers
    assert KEY not in transport.last.url


async def test_max_tokens_comes_from_the_request_else_model_info_else_the_default() -> None:
    _, _, transport = await scripted({"messages": HI})
    assert transport.last.json["max_tokens"] == DEFAULT_MAX_TOKENS
    assert transport.last.json["model"] == "claude-fake-1"
    _, _, transport = await scripted({"messages": HI}, model_info={"max_output_tokens": 77})
    assert transport.last.json["max_tokens"] == 77
    _, _, transport = await scripted({"messages": HI, "max_tokens": 9})
    assert transport.last.json["max_tokens"] == 9


async def test_system_messages_reach_the_wire_as_system_blocks() -> None:
    messages = [{"role": "system", "content": "be brief"}, *HI]
    _, _, transport = await scripted({"messages": messages})
    sent = transport.last.json
    assert sent["system"] == [{"type": "text", "text": "be brief"}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


# -- reply --------------------------------------------------------------------------------


async def test_a_tool_use_reply_reaches_the_client_as_openai_tool_calls() -> None:
    content = [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}},
    ]
    reply, request, _ = await scripted(
        {"messages": HI}, Canned.json(message(content, "tool_use", input_tokens=3))
    )
    assert reply.body is None and reply.format == "anthropic"
    choice = orjson.loads(client_body(reply, request))["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "hi"
    (call,) = choice["message"]["tool_calls"]
    assert call == {
        "id": "t1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a":[1]}'},
    }


async def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 20,
        "output_tokens": 7,
    }
    reply, request, _ = await scripted({"messages": HI}, Canned.json(message([], **usage)))
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (150, 30)
    assert reply.usage.completion_tokens == 7
    assert orjson.loads(client_body(reply, request))["usage"]["total_tokens"] == 157


async def test_529_overloaded_is_a_retryable_503_with_its_retry_after() -> None:
    raw = {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}
    with pytest.raises(UpstreamStatusError) as info:
        await scripted({"messages": HI}, Canned.json(raw, 529, **{"retry-after": "4"}))
    err = info.value
    assert err.status == 503 and err.retryable
    assert err.headers == {"retry-after": "4"}
    assert "Busy" in err.message


async def test_errors_never_carry_the_key() -> None:
    leak = f"invalid x-api-key: {KEY}"
    raw = {"type": "error", "error": {"type": "authentication_error", "message": leak}}
    with pytest.raises(UpstreamStatusError) as info:
        await scripted({"messages": HI}, Canned.json(raw, 401))
    err = info.value
    assert err.status == 401 and err.type == "authentication_error"
    assert KEY not in err.body().decode()
    assert KEY not in err.message


# -- streams, cut at any boundary --------------------------------------------------------


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block(kind: str, **fields: Any) -> bytes:
    return _sse(kind, {"type": kind, "index": 0, **fields})


START = {
    "id": "msg_s",
    "type": "message",
    "role": "assistant",
    "model": "claude-fake-1",
    "content": [],
    "usage": {"input_tokens": 8, "cache_read_input_tokens": 2, "output_tokens": 1},
}
STREAM = b"".join(
    [
        _sse("message_start", {"type": "message_start", "message": START}),
        _sse("ping", {"type": "ping"}),
        _block("content_block_start", content_block={"type": "text", "text": ""}),
        _block("content_block_delta", delta={"type": "text_delta", "text": "po"}),
        _block("content_block_delta", delta={"type": "text_delta", "text": "ng"}),
        _block("content_block_stop"),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 5},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
)


@pytest.mark.parametrize("piece", [1, 7, 64, len(STREAM)])
async def test_a_stream_cut_anywhere_reaches_the_client_as_the_same_openai_chunks(
    piece: int,
) -> None:
    reply, request, transport = await scripted(
        {"messages": HI, "stream": True, "stream_options": {"include_usage": True}},
        Canned.stream(STREAM, piece=piece),
    )
    assert transport.last.json["stream"] is True
    assert transport.last.headers["accept"] == "text/event-stream"
    raw = await collect(reply, request)
    assert raw.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "pong"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 10
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)


@pytest.mark.parametrize("piece", [1, 5, len(STREAM)])
async def test_a_native_stream_cut_anywhere_is_relayed_byte_for_byte(piece: int) -> None:
    body = orjson.dumps({"model": "claude", "max_tokens": 8, "stream": True, "messages": HI})
    request = MessagesFormat().parse(body, None)
    transport = ScriptedTransport(Canned.stream(STREAM, piece=piece))
    reply = await Engine(transport).send(request, deployment(), "claude-fake-1")
    assert reply.format == "anthropic"
    assert await collect(reply, request) == STREAM
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)


async def test_stream_cut_before_message_stop_is_an_error() -> None:
    cut = STREAM[: STREAM.index(b"event: message_delta")]
    reply, request, _ = await scripted({"messages": HI, "stream": True}, Canned.stream(cut))
    with pytest.raises(UpstreamUnreachable):
        await collect(reply, request)
    assert reply.stream is not None and not reply.stream.outcome.completed
    assert reply.final_usage() is None


# -- over the wire ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicHarness]:
    server = AnthropicHarness()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    transport = AiohttpTransport(pool_size=4)
    yield Engine(transport)
    await transport.close()


def wire_deployment(fake: AnthropicHarness) -> Deployment:
    return deployment(fake.origin, api_key=fake.api_key)


def chat(case: str, **extra: Any) -> ParsedRequest:
    body = {"model": "claude", "messages": [{"role": "user", "content": f"CASE {case}"}], **extra}
    return parse(Kind.CHAT, orjson.dumps(body))


async def test_stream_without_include_usage_has_no_usage_chunk_but_bills(
    fake: AnthropicHarness, engine: Engine
) -> None:
    request = chat("stream_text", stream=True)
    reply = await engine.send(request, wire_deployment(fake), "claude-fake-1")
    raw = await collect(reply, request)
    assert b'"usage"' not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)
    received = fake.last_received()
    assert received.headers["x-api-key"] == fake.api_key
    assert fake.api_key not in received.path + str(received.query)


async def test_error_event_mid_stream_raises_a_retryable_error(
    fake: AnthropicHarness, engine: Engine
) -> None:
    request = chat("stream_error", stream=True)
    reply = await engine.send(request, wire_deployment(fake), "claude-fake-1")
    stream = reply.stream
    assert stream is not None
    encoder = InboundFormat(Kind.CHAT).stream_encoder(request)
    seen = b""
    with pytest.raises(UpstreamStatusError) as info:
        async for event in stream.events():
            seen += encoder.encode(event)
    await stream.aclose()
    assert b'"content":"po"' in seen
    assert info.value.status == 503 and info.value.retryable
    assert stream.outcome.error is info.value
    assert not stream.outcome.completed
    assert reply.final_usage() is None


async def test_upstream_529_and_429_reach_the_router_as_retryable(
    fake: AnthropicHarness, engine: Engine
) -> None:
    for case, status, retry_after in (("error_529", 503, "3"), ("error_429", 429, "3")):
        with pytest.raises(UpstreamStatusError) as info:
            await engine.send(chat(case), wire_deployment(fake), "claude-fake-1")
        assert info.value.status == status
        assert info.value.retryable
        assert info.value.headers["retry-after"] == retry_after


async def test_a_rejected_key_is_scrubbed_from_the_error(
    fake: AnthropicHarness, engine: Engine
) -> None:
    wrong = "sk-ant-wrong-key-0123456789"
    with pytest.raises(UpstreamStatusError) as info:
        await engine.send(chat("text"), deployment(fake.origin, api_key=wrong), "claude-fake-1")
    assert info.value.status == 401
    assert wrong not in info.value.body().decode()


async def test_messages_request_passes_through_as_bytes(
    fake: AnthropicHarness, engine: Engine
) -> None:
    native = (
        b'{"model":"claude","max_tokens":64,"messages":'
        b'[{"role":"user","content":[{"type":"text","text":"CASE text","cache_control":'
        b'{"type":"ephemeral"}}]}],"top_k":3}'
    )
    request = MessagesFormat().parse(native, {"anthropic-beta": "prompt-caching-2024-07-31"})
    reply = await engine.send(request, wire_deployment(fake), "claude-fake-1")
    assert reply.format == "anthropic" and reply.body is not None and reply.typed is None
    received = fake.last_received()
    assert received.raw == native.replace(b'"claude"', b'"claude-fake-1"')
    assert received.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert received.headers["x-api-key"] == fake.api_key
    payload = orjson.loads(client_body(reply, request))
    assert payload["type"] == "message"
    assert payload["content"] == [{"type": "text", "text": "pong"}]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (10, 2)


async def test_messages_stream_passes_through_and_usage_is_sniffed(
    fake: AnthropicHarness, engine: Engine
) -> None:
    native = orjson.dumps(
        {
            "model": "claude",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "CASE stream_tools"}],
        }
    )
    request = MessagesFormat().parse(native, None)
    reply = await engine.send(request, wire_deployment(fake), "claude-fake-1")
    raw = await collect(reply, request)
    assert raw.startswith(b"event: message_start\n")
    assert b"event: message_stop" in raw
    assert b"input_json_delta" in raw
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (10, 2, 5)
