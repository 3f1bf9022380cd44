"""``gemini/``: OpenAI chat ↔ Gemini generateContent, through the provider engine.

Fixtures follow the Gemini API reference (GenerateContentRequest/Response, UsageMetadata,
the SSE stream of ``streamGenerateContent?alt=sse``, the ``google.rpc`` error shape). Each
test sends through ``Engine`` at the transport seam and checks what went on the wire and
the bytes the OpenAI client would see.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.gemini import SIGNATURE_MARK
from proxy.errors import InvalidRequest, UpstreamStatusError, UpstreamUnreachable
from proxy.request import Kind
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import Engine
from tests.providers.scripted import (
    Canned,
    ScriptedTransport,
    chat_request,
    make_deployment,
    sse_chunks,
)
from tests.upstream.common import Result

KEY = "AIzaSy-test-gemini-key-0123456789"
PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def deployment(**params: Any) -> Deployment:
    return make_deployment("gemini/gemini-2.5-flash", api_key=KEY, **params)


def reply(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4},
        "responseId": "resp-1",
        **extra,
    }


async def send(canned: Canned, **body: Any) -> tuple[Result, ScriptedTransport]:
    transport = ScriptedTransport(canned)
    request = chat_request(**body)
    result = await Engine(transport).send(request, deployment(), "gemini-2.5-flash")
    return Result(request, result), transport


# -- request -------------------------------------------------------------------------------
async def test_key_travels_in_the_header_never_in_the_url() -> None:
    _, transport = await send(Canned.json(reply([{"text": "ok"}])))
    sent = transport.last
    assert sent.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert KEY not in sent.url
    assert sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers

    streamed, transport = await send(
        Canned.stream(b'data: {"candidates": [{"finishReason": "STOP"}]}\n\n'), stream=True
    )
    await streamed.stream()
    assert transport.last.url.endswith(":streamGenerateContent?alt=sse")
    assert KEY not in transport.last.url


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        pytest.param("http://fake:9", "http://fake:9/v1beta/models/m:generateContent", id="bare"),
        pytest.param("http://fake:9/v1/", "http://fake:9/v1/models/m:generateContent", id="v1"),
        pytest.param(
            "http://fake:9/v1beta", "http://fake:9/v1beta/models/m:generateContent", id="v1beta"
        ),
    ],
)
async def test_api_base_gets_a_version_when_it_has_none(api_base: str, url: str) -> None:
    transport = ScriptedTransport(Canned.json(reply([{"text": "ok"}])))
    target = make_deployment("gemini/m", api_key=KEY, api_base=api_base)
    await Engine(transport).send(chat_request(), target, "m")
    assert transport.last.url == url


# -- response ------------------------------------------------------------------------------
async def test_text_reasoning_and_usage_map_to_a_chat_completion() -> None:
    payload = reply(
        [{"text": "let me think", "thought": True}, {"text": "Hello"}, {"text": " there"}],
        usageMetadata={
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 7,
            "thoughtsTokenCount": 20,
            "toolUsePromptTokenCount": 3,
            "totalTokenCount": 130,
        },
    )
    result, _ = await send(Canned.json(payload))
    body = orjson.loads(result.body)
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-resp-1"
    (choice,) = body["choices"]
    assert choice["message"]["content"] == "Hello there"
    assert choice["message"]["reasoning_content"] == "let me think"
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 103,
        "completion_tokens": 27,
        "total_tokens": 130,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    usage = result.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens) == (103, 27)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (60, 20)


async def test_function_calls_become_tool_calls_with_json_string_arguments() -> None:
    parts = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"},
    ]
    result, _ = await send(Canned.json(reply(parts)))
    (choice,) = orjson.loads(result.body)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert first["id"] != second["id"]
    assert second["id"].endswith(SIGNATURE_MARK + "c2lnbmF0dXJl")


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        pytest.param("STOP", "stop", id="stop"),
        pytest.param("MAX_TOKENS", "length", id="max-tokens"),
        pytest.param("SAFETY", "content_filter", id="safety"),
        pytest.param("RECITATION", "content_filter", id="recitation"),
        pytest.param("PROHIBITED_CONTENT", "content_filter", id="prohibited"),
        pytest.param("OTHER", "stop", id="other"),
    ],
)
async def test_finish_reasons_map_to_openai_names(reason: str, finish: str) -> None:
    result, _ = await send(Canned.json(reply([{"text": "x"}], reason)))
    assert orjson.loads(result.body)["choices"][0]["finish_reason"] == finish


async def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    payload = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9},
    }
    result, _ = await send(Canned.json(payload))
    (choice,) = orjson.loads(result.body)["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None
    assert result.usage.prompt_tokens == 9


# -- streaming -----------------------------------------------------------------------------
def gemini_events(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(p) + b"\r\n\r\n" for p in payloads)


TEXT_STREAM = gemini_events(
    reply([{"text": "Hel"}], None, usageMetadata={"promptTokenCount": 12}),
    reply([{"text": "lo"}], None, usageMetadata={"promptTokenCount": 12}),
    reply(
        [{"text": "!"}],
        "STOP",
        usageMetadata={"promptTokenCount": 12, "candidatesTokenCount": 3,
                       "cachedContentTokenCount": 4},
    ),
)  # fmt: skip


@pytest.mark.parametrize("piece", [1, 7, 10_000], ids=["byte-by-byte", "split", "whole"])
async def test_a_text_stream_translates_however_the_bytes_arrive(piece: int) -> None:
    result, _ = await send(
        Canned.stream(TEXT_STREAM, piece=piece),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, done = sse_chunks(await result.stream())
    assert done
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:] if d.get("content")] == ["Hel", "lo", "!"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop"]
    # One usage chunk, after the finish chunk, with the last (whole) count Gemini reported.
    assert [i for i, c in enumerate(chunks) if "usage" in c] == [len(chunks) - 1]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 12
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert result.final_usage().total_tokens == 15


async def test_without_include_usage_the_stream_has_no_usage_chunk_but_is_billed() -> None:
    result, _ = await send(Canned.stream(TEXT_STREAM, piece=5), stream=True)
    chunks, done = sse_chunks(await result.stream())
    assert done
    assert all(c["choices"] and "usage" not in c for c in chunks)
    usage = result.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 3)


async def test_a_streamed_function_call_arrives_whole_with_id_name_and_arguments() -> None:
    calls = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]
    data = gemini_events(reply([{"text": "Checking."}], None), reply(calls, "STOP"))
    result, _ = await send(Canned.stream(data, piece=3), stream=True, tools=[WEATHER])
    chunks, done = sse_chunks(await result.stream())
    assert done
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    tool_deltas = [call for delta in deltas for call in delta.get("tool_calls", [])]
    assert [d["index"] for d in tool_deltas] == [0, 1]
    for delta, city in zip(tool_deltas, ("Paris", "Rome"), strict=True):
        assert delta["id"].startswith("call_")
        assert delta["type"] == "function"
        assert delta["function"]["name"] == "get_weather"
        assert orjson.loads(delta["function"]["arguments"]) == {"city": city}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]


async def test_an_error_event_mid_stream_ends_it_with_the_mapped_error() -> None:
    error = {"error": {"code": 503, "message": f"overloaded, key {KEY}", "status": "UNAVAILABLE"}}
    data = gemini_events(reply([{"text": "Hel"}], None), error)
    result, _ = await send(Canned.stream(data, piece=4), stream=True)
    seen: list[bytes] = []
    with pytest.raises(UpstreamStatusError) as caught:
        await result.stream(seen)
    assert b"Hel" in b"".join(seen)
    assert caught.value.status == 502 and caught.value.retryable
    assert KEY not in caught.value.message


async def test_a_stream_cut_before_its_finish_is_an_error_not_a_done() -> None:
    data = gemini_events(reply([{"text": "Hel"}], None))
    result, _ = await send(Canned.stream(data), stream=True)
    out: list[bytes] = []
    with pytest.raises(UpstreamUnreachable):
        await result.stream(out)
    assert b"[DONE]" not in b"".join(out)
    assert result.final_usage().prompt_tokens == 12


# -- errors --------------------------------------------------------------------------------
def google_error(status: int, code: str, message: str, *details: Any) -> Canned:
    error = {"code": status, "message": message, "status": code, "details": list(details)}
    return Canned.json({"error": error}, status)


@pytest.mark.parametrize(
    ("canned", "status", "type_", "retryable"),
    [
        pytest.param(
            google_error(400, "INVALID_ARGUMENT", "bad field"),
            400, "invalid_request_error", False, id="400",
        ),
        pytest.param(
            google_error(
                400, "INVALID_ARGUMENT", f"API key not valid: {KEY}",
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ),
            401, "authentication_error", False, id="invalid-key",
        ),
        pytest.param(
            google_error(403, "PERMISSION_DENIED", "denied"),
            403, "permission_error", False, id="403",
        ),
        pytest.param(
            google_error(404, "NOT_FOUND", "no such model"),
            404, "not_found_error", False, id="404",
        ),
        pytest.param(
            google_error(429, "RESOURCE_EXHAUSTED", "quota",
                         {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                          "retryDelay": "37s"}),
            429, "rate_limit_error", True, id="429",
        ),
        pytest.param(
            google_error(500, "INTERNAL", "oops"), 502, "upstream_error", True, id="500"
        ),
        pytest.param(
            google_error(503, "UNAVAILABLE", "The model is overloaded."),
            502, "upstream_error", True, id="503-overloaded",
        ),
        pytest.param(Canned(status=502, body=b"<html>bad gateway</html>"),
                     502, "upstream_error", True, id="not-json"),
    ],
)  # fmt: skip
async def test_errors_map_to_the_contract_with_the_key_scrubbed(
    canned: Canned, status: int, type_: str, retryable: bool
) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        await send(canned)
    error = caught.value
    assert (error.status, error.type, error.retryable) == (status, type_, retryable)
    assert KEY not in error.message
    assert KEY not in error.body().decode()
    if status == 429:
        assert error.headers["retry-after"] == "37"


# -- other endpoints -----------------------------------------------------------------------
async def test_legacy_completions_are_refused() -> None:
    transport = ScriptedTransport()
    request = chat_request(Kind.COMPLETION, prompt="hi")
    with pytest.raises(InvalidRequest):
        await Engine(transport).send(request, deployment(), "gemini-2.5-flash")
    assert transport.sent == []


async def test_embeddings_use_batch_embed_contents_and_are_billed_as_estimated() -> None:
    canned = Canned.json({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]})
    transport = ScriptedTransport(canned)
    request = chat_request(Kind.EMBEDDING, input=["a", "b"])
    target = make_deployment("gemini/text-embedding-004", api_key=KEY)
    result = Result(request, await Engine(transport).send(request, target, "text-embedding-004"))
    assert transport.last.url.endswith("/models/text-embedding-004:batchEmbedContents")
    assert transport.last.json == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}},
        ]
    }
    body = orjson.loads(result.body)
    assert [d["embedding"] for d in body["data"]] == [[0.1, 0.2], [0.3, 0.4]]
    assert result.final_usage() is None
