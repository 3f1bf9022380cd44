"""The built-in ``mock/`` provider through the engine: deterministic replies in OpenAI's exact
wire format, relayed to an OpenAI client as bytes."""

from __future__ import annotations

import gc
from typing import Any

import orjson
import pytest

from proxy.config import ModelEntry, RouterSettings, parse_config
from proxy.dialects.openai import parse
from proxy.request import Kind
from proxy.server.settings import Settings
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import EVENT_STREAM, Engine, Reply
from proxy.upstream.mock import EMBEDDING_DIMENSIONS, MockTransport
from proxy.upstream.providers import build_deployment
from tests.providers.scripted import ScriptedTransport


def deployment(mock_response: str | None = None) -> Deployment:
    extra = f"\n      mock_response: {mock_response!r}" if mock_response else ""
    config = parse_config(
        f"model_list:\n  - model_name: mock-gpt\n    litellm_params:\n"
        f"      model: mock/mock-gpt{extra}\n",
        "mock.yaml",
        {},
    )
    entry: ModelEntry = config.model_list[0]
    return build_deployment(0, entry, RouterSettings(), Settings())


async def send(kind: Kind, body: dict[str, Any], mock_response: str | None = None) -> Reply:
    request = parse(kind, orjson.dumps(body))
    # The network transport must never be used for mock/: it has no replies to give.
    network = ScriptedTransport()
    reply = await Engine(network, mock=MockTransport()).send(
        request, deployment(mock_response), "mock-gpt"
    )
    assert network.sent == []
    return reply


def chat(content: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": content}], **extra}


async def events(reply: Reply) -> list[bytes]:
    assert reply.stream is not None
    await reply.stream.prime()
    try:
        raw = b"".join([chunk async for chunk in reply.stream.raw()])
    finally:
        await reply.stream.aclose()
    assert raw.endswith(b"\n\n")
    return raw.split(b"\n\n")[:-1]


async def test_same_request_gives_the_same_reply() -> None:
    first = orjson.loads((await send(Kind.CHAT, chat())).body or b"")
    second = orjson.loads((await send(Kind.CHAT, chat())).body or b"")
    first.pop("created")
    second.pop("created")
    assert first == second
    assert first["object"] == "chat.completion"
    assert first["id"].startswith("chatcmpl-mock-")
    message = first["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "Hello from Tollway's mock model. You said: Say hello",
        "refusal": None,
    }
    assert first["choices"][0]["finish_reason"] == "stop"


async def test_different_requests_give_different_replies() -> None:
    one = orjson.loads((await send(Kind.CHAT, chat("one"))).body or b"")
    two = orjson.loads((await send(Kind.CHAT, chat("two"))).body or b"")
    assert one["id"] != two["id"]
    assert one["choices"][0]["message"]["content"] != two["choices"][0]["message"]["content"]


async def test_usage_is_filled_and_matches_the_reply() -> None:
    reply = await send(Kind.CHAT, chat())
    body = orjson.loads(reply.body or b"")
    words = body["choices"][0]["message"]["content"].split(" ")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == len(words)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert body["usage"] == {
        "prompt_tokens": reply.usage.prompt_tokens,
        "completion_tokens": reply.usage.completion_tokens,
        "total_tokens": reply.usage.total_tokens,
    }
    assert reply.final_usage() == reply.usage


async def test_longer_prompt_counts_more_prompt_tokens() -> None:
    short = await send(Kind.CHAT, chat("hi"))
    long = await send(Kind.CHAT, chat("hi " * 400))
    assert short.usage is not None and long.usage is not None
    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 200


async def test_max_tokens_truncates_with_finish_reason_length() -> None:
    reply = await send(Kind.CHAT, chat(max_tokens=3))
    choice = orjson.loads(reply.body or b"")["choices"][0]
    assert choice["message"]["content"] == "Hello from Tollway's"
    assert choice["finish_reason"] == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


async def test_mock_response_from_config_is_the_reply() -> None:
    reply = await send(Kind.CHAT, chat(), mock_response="Fixed answer.")
    assert orjson.loads(reply.body or b"")["choices"][0]["message"]["content"] == "Fixed answer."


async def test_completion_reply_is_a_text_completion() -> None:
    reply = await send(Kind.COMPLETION, {"model": "mock-gpt", "prompt": "Once upon"})
    body = orjson.loads(reply.body or b"")
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].endswith("You said: Once upon")
    assert reply.usage is not None
    assert reply.usage.completion_tokens == len(body["choices"][0]["text"].split(" "))


@pytest.mark.parametrize(
    "max_tokens",
    [pytest.param(None, id="full"), pytest.param(2, id="truncated")],
)
async def test_stream_is_openai_chunks_ending_in_done(max_tokens: int | None) -> None:
    full = orjson.loads((await send(Kind.CHAT, chat(max_tokens=max_tokens))).body or b"")
    reply = await send(Kind.CHAT, chat(stream=True, max_tokens=max_tokens))
    assert reply.content_type == EVENT_STREAM
    assert reply.body is None
    evs = await events(reply)
    assert evs[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in evs[:-1]]
    assert all(e.startswith(b"data: ") for e in evs)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == full["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    assert finishes[-1] == full["choices"][0]["finish_reason"]
    assert all("usage" not in c for c in chunks)
    usage = reply.final_usage()
    assert usage is not None
    assert usage.completion_tokens == full["usage"]["completion_tokens"]


async def test_stream_has_a_usage_chunk_only_when_asked() -> None:
    reply = await send(Kind.CHAT, chat(stream=True, stream_options={"include_usage": True}))
    evs = await events(reply)
    assert evs[-1] == b"data: [DONE]"
    usage_chunk = orjson.loads(evs[-2].removeprefix(b"data: "))
    assert usage_chunk["choices"] == []
    usage = reply.final_usage()
    assert usage is not None
    assert usage_chunk["usage"] == {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def test_completion_stream_uses_text_completion_chunks() -> None:
    reply = await send(Kind.COMPLETION, {"model": "mock-gpt", "prompt": "hi", "stream": True})
    evs = await events(reply)
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in evs[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks).endswith("You said: hi")


async def test_embeddings_are_deterministic_per_input() -> None:
    body = {"model": "mock-embedding", "input": ["alpha", "beta", "alpha"]}
    first = orjson.loads((await send(Kind.EMBEDDING, body)).body or b"")
    second = orjson.loads((await send(Kind.EMBEDDING, body)).body or b"")
    assert first == second
    vectors = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1, 2]
    assert all(len(v) == EMBEDDING_DIMENSIONS for v in vectors)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert first["object"] == "list"


async def test_embedding_usage_counts_the_input() -> None:
    reply = await send(Kind.EMBEDDING, {"model": "mock-embedding", "input": "x" * 400})
    body = orjson.loads(reply.body or b"")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 100
    assert reply.usage.completion_tokens == 0
    assert body["usage"] == {"prompt_tokens": 100, "total_tokens": 100}


async def test_a_stream_read_raw_and_closed_is_freed_without_the_collector() -> None:
    # A stream and its raw view must not form a reference cycle: every pass-through stream
    # would then wait for the cyclic collector (bench.ab: 5% more CPU per stream).
    from proxy.upstream.stream import UpstreamStream

    def alive() -> int:
        return sum(type(o) is UpstreamStream for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = alive()
        reply = await send(Kind.CHAT, chat(stream=True))
        assert reply.stream is not None
        assert len(await events(reply)) > 1
        assert alive() == before + 1
        del reply
        assert alive() == before
    finally:
        gc.enable()
