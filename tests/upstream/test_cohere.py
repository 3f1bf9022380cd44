"""``cohere/``: OpenAI chat ↔ Cohere v2 chat, through the provider engine.

Fixtures follow Cohere's v2 API reference (Chat, Chat streaming events, Embed, errors).
Each test sends through ``Engine`` at the transport seam and checks what went on the wire and
the bytes the OpenAI client would see.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.errors import InvalidRequest, UpstreamStatusError, UpstreamUnreachable
from proxy.request import Kind
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import Engine
from tests.dialects.cohere_payloads import (
    START,
    TEXT_EVENTS,
    WEATHER,
    content,
    end,
)
from tests.dialects.cohere_payloads import reply_payload as reply
from tests.providers.scripted import (
    Canned,
    ScriptedTransport,
    chat_request,
    make_deployment,
    sse_chunks,
)
from tests.upstream.common import Result

KEY = "co-test-cohere-key-0123456789abcdef"


def deployment(**params: Any) -> Deployment:
    return make_deployment("cohere/command-a-03-2025", api_key=KEY, **params)


async def send(canned: Canned, **body: Any) -> tuple[Result, ScriptedTransport]:
    transport = ScriptedTransport(canned)
    request = chat_request(**body)
    result = await Engine(transport).send(request, deployment(), "command-a-03-2025")
    return Result(request, result), transport


# -- request -------------------------------------------------------------------------------
async def test_the_key_is_a_bearer_token_and_the_url_is_v2_chat() -> None:
    _, transport = await send(Canned.json(reply({"content": []})))
    assert transport.last.url == "https://api.cohere.com/v2/chat"
    assert transport.last.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in transport.last.url


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        pytest.param("http://fake:9", "http://fake:9/v2/chat", id="origin"),
        pytest.param("http://fake:9/v2/", "http://fake:9/v2/chat", id="v2"),
        pytest.param("http://fake:9/v2/chat", "http://fake:9/v2/chat", id="full"),
    ],
)
async def test_api_base_forms(api_base: str, url: str) -> None:
    transport = ScriptedTransport(Canned.json(reply({"content": []})))
    target = make_deployment("cohere/command-r", api_key=KEY, api_base=api_base)
    await Engine(transport).send(chat_request(), target, "command-r")
    assert transport.last.url == url


# -- response ------------------------------------------------------------------------------
async def test_text_and_billed_usage_map_to_a_chat_completion() -> None:
    message = {
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hi!"}]
    }
    result, _ = await send(Canned.json(reply(message)))
    body = orjson.loads(result.body)
    assert body["id"] == "chatcmpl-5a50480a"
    (choice,) = body["choices"]
    assert choice["message"]["content"] == "Hi!"
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["finish_reason"] == "stop"
    # billed_units is what Cohere charges; tokens counts its own prompt template too.
    assert body["usage"]["prompt_tokens"] == 9
    assert body["usage"]["completion_tokens"] == 4
    assert result.final_usage().total_tokens == 13


async def test_usage_falls_back_to_tokens_without_billed_units() -> None:
    payload = reply({"content": []}, usage={"tokens": {"input_tokens": 5, "output_tokens": 2}})
    result, _ = await send(Canned.json(payload))
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 2)


async def test_tool_calls_keep_cohere_ids_and_the_tool_plan_is_the_content() -> None:
    message = {
        "tool_plan": "I will look it up.",
        "tool_calls": [
            {"id": "get_weather_k3", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    }  # fmt: skip
    result, _ = await send(Canned.json(reply(message, "TOOL_CALL")))
    (choice,) = orjson.loads(result.body)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I will look it up."
    (call,) = choice["message"]["tool_calls"]
    assert call == {
        "id": "get_weather_k3",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        pytest.param("COMPLETE", "stop", id="complete"),
        pytest.param("STOP_SEQUENCE", "stop", id="stop-sequence"),
        pytest.param("MAX_TOKENS", "length", id="max-tokens"),
        pytest.param("ERROR_TOXIC", "content_filter", id="toxic"),
        pytest.param("TIMEOUT", "stop", id="other"),
    ],
)
async def test_finish_reasons_map_to_openai_names(reason: str, finish: str) -> None:
    result, _ = await send(Canned.json(reply({"content": []}, reason)))
    assert orjson.loads(result.body)["choices"][0]["finish_reason"] == finish


# -- streaming -----------------------------------------------------------------------------
def cohere_events(*payloads: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + p["type"].encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for p in payloads
    )


TEXT_STREAM = cohere_events(*TEXT_EVENTS)


@pytest.mark.parametrize("piece", [1, 9, 10_000], ids=["byte-by-byte", "split", "whole"])
async def test_a_text_stream_translates_however_the_bytes_arrive(piece: int) -> None:
    result, _ = await send(
        Canned.stream(TEXT_STREAM, piece=piece), stream=True, stream_options={"include_usage": True}
    )
    chunks, done = sse_chunks(await result.stream())
    assert done
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"] == "chatcmpl-m-1"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:] if d.get("content")] == ["Hel", "lo"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 9


async def test_without_include_usage_there_is_no_usage_chunk_but_the_stream_is_billed() -> None:
    result, _ = await send(Canned.stream(TEXT_STREAM, piece=13), stream=True)
    chunks, done = sse_chunks(await result.stream())
    assert done and all(c["choices"] for c in chunks)
    usage = result.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 4)


async def test_streamed_tool_calls_become_indexed_argument_deltas() -> None:
    def start(index: int, ident: str) -> dict[str, Any]:
        call = {"id": ident, "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
        return {"type": "tool-call-start", "index": index,
                "delta": {"message": {"tool_calls": call}}}  # fmt: skip

    def args(index: int, piece: str) -> dict[str, Any]:
        delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
        return {"type": "tool-call-delta", "index": index, "delta": delta}

    data = cohere_events(
        START,
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Checking."}}},
        start(0, "get_weather_a"),
        args(0, '{"city": '),
        args(0, '"Paris"}'),
        {"type": "tool-call-end", "index": 0},
        start(1, "get_weather_b"),
        args(1, '{"city": "Rome"}'),
        {"type": "tool-call-end", "index": 1},
        end("TOOL_CALL"),
    )
    result, _ = await send(Canned.stream(data, piece=11), stream=True, tools=[WEATHER])
    chunks, done = sse_chunks(await result.stream())
    assert done
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert [d["content"] for d in deltas if d.get("content")] == ["Checking."]
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert [(c["index"], c.get("id")) for c in calls] == [
        (0, "get_weather_a"), (0, None), (0, None), (1, "get_weather_b"), (1, None),
    ]  # fmt: skip
    assert calls[0]["function"]["name"] == "get_weather"
    by_index: dict[int, str] = {}
    for call in calls:
        by_index[call["index"]] = by_index.get(call["index"], "") + call["function"]["arguments"]
    assert {i: orjson.loads(a) for i, a in by_index.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Rome"},
    }
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]


async def test_a_message_end_with_an_error_ends_the_stream_with_it() -> None:
    failed = {"type": "message-end", "delta": {"error": f"generation failed for {KEY}"}}
    result, _ = await send(Canned.stream(cohere_events(START, content("Hel"), failed)), stream=True)
    with pytest.raises(UpstreamStatusError) as caught:
        await result.stream()
    assert caught.value.status == 502
    assert KEY not in caught.value.message


async def test_a_stream_cut_before_message_end_is_an_error() -> None:
    result, _ = await send(Canned.stream(cohere_events(START, content("Hel"))), stream=True)
    with pytest.raises(UpstreamUnreachable):
        await result.stream()


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected", "type_", "retryable"),
    [
        pytest.param(400, 400, "invalid_request_error", False, id="400"),
        pytest.param(401, 401, "authentication_error", False, id="401"),
        pytest.param(498, 401, "authentication_error", False, id="498-invalid-token"),
        pytest.param(404, 404, "not_found_error", False, id="404"),
        pytest.param(422, 422, "invalid_request_error", False, id="422"),
        pytest.param(429, 429, "rate_limit_error", True, id="429"),
        pytest.param(500, 502, "upstream_error", True, id="500"),
        pytest.param(503, 502, "upstream_error", True, id="503"),
    ],
)
async def test_errors_map_to_the_contract_with_the_key_scrubbed(
    status: int, expected: int, type_: str, retryable: bool
) -> None:
    payload = {"id": "e1", "message": f"something about {KEY}"}
    with pytest.raises(UpstreamStatusError) as caught:
        await send(Canned.json(payload, status, **{"retry-after": "3"}))
    error = caught.value
    assert (error.status, error.type, error.retryable) == (expected, type_, retryable)
    assert "something about" in error.message
    assert KEY not in error.body().decode()
    if status == 429:
        assert error.headers["retry-after"] == "3"


# -- other endpoints -----------------------------------------------------------------------
async def test_embeddings_use_v2_embed_with_billed_usage() -> None:
    canned = Canned.json(
        {
            "id": "e",
            "embeddings": {"float": [[0.1, 0.2]]},
            "texts": ["a"],
            "meta": {"billed_units": {"input_tokens": 3}},
        }
    )
    transport = ScriptedTransport(canned)
    request = chat_request(Kind.EMBEDDING, input="a")
    target = make_deployment("cohere/embed-v4.0", api_key=KEY)
    result = Result(request, await Engine(transport).send(request, target, "embed-v4.0"))
    assert transport.last.url == "https://api.cohere.com/v2/embed"
    assert transport.last.json == {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    body = orjson.loads(result.body)
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
    assert result.final_usage().prompt_tokens == 3


async def test_legacy_completions_are_refused() -> None:
    transport = ScriptedTransport()
    with pytest.raises(InvalidRequest):
        await Engine(transport).send(
            chat_request(Kind.COMPLETION, prompt="hi"), deployment(), "command-r"
        )
    assert transport.sent == []
