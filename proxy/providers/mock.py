"""``mock/``: a built-in provider with deterministic replies, so Tollway runs with no API key.

The reply is a function of the request (or ``litellm_params.mock_response``); usage is
counted the same way every time; streams are real SSE in OpenAI's chunk format.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..parse import ChatBody, CompletionBody, EmbeddingBody, Kind, ParsedRequest
from ..upstream.sse import sse_event
from ..upstream.transport import Transport
from ..usage import Usage, estimate_tokens
from .base import EVENT_STREAM, Deployment, Reply

EMBEDDING_DIMENSIONS = 8


class MockProvider:
    def __init__(self, transport: Transport) -> None:
        del transport

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        typed = request.typed
        if isinstance(typed, EmbeddingBody):
            return _embedding(typed, upstream_model)
        prompt = _prompt_text(typed)
        content = deployment.params.mock_response or _reply_text(prompt)
        words = content.split(" ")
        finish = "stop"
        if request.max_tokens is not None and len(words) > request.max_tokens:
            words, finish = words[: request.max_tokens], "length"
        usage = Usage(
            prompt_tokens=_count_prompt_tokens(typed, prompt),
            completion_tokens=len(words),
            total_tokens=0,
        )
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        ident = "mock-" + hashlib.sha256(request.body).hexdigest()[:24]
        created = int(time.time())
        if request.stream:
            chunks = _stream(request, ident, created, upstream_model, words, finish, usage)
            return Reply(content_type=EVENT_STREAM, chunks=chunks, usage_of_stream=lambda: usage)
        text = " ".join(words)
        body: dict[str, Any]
        if request.kind is Kind.CHAT:
            body = {
                "id": "chatcmpl-" + ident,
                "object": "chat.completion",
                "created": created,
                "model": upstream_model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage_json(usage),
            }
        else:
            body = {
                "id": "cmpl-" + ident,
                "object": "text_completion",
                "created": created,
                "model": upstream_model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
                "usage": _usage_json(usage),
            }
        return Reply(body=orjson.dumps(body), usage=usage)


async def _stream(
    request: ParsedRequest,
    ident: str,
    created: int,
    model: str,
    words: list[str],
    finish: str,
    usage: Usage,
) -> AsyncIterator[bytes]:
    chat = request.kind is Kind.CHAT
    base: dict[str, Any] = {
        "id": ("chatcmpl-" if chat else "cmpl-") + ident,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
    }
    if chat:
        yield sse_event(
            orjson.dumps({**base, "choices": [_choice({"role": "assistant", "content": ""}, None)]})
        )
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        last = i == len(words) - 1
        if chat:
            choice = _choice({"content": piece}, finish if last else None)
        else:
            choice = {
                "index": 0,
                "text": piece,
                "logprobs": None,
                "finish_reason": finish if last else None,
            }
        yield sse_event(orjson.dumps({**base, "choices": [choice]}))
    if request.wants_usage_chunk:
        yield sse_event(orjson.dumps({**base, "choices": [], "usage": _usage_json(usage)}))
    yield b"data: [DONE]\n\n"


def _choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _embedding(typed: EmbeddingBody, model: str) -> Reply:
    inputs = [typed.input] if isinstance(typed.input, str) else list(typed.input)
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else orjson.dumps(item).decode()
        tokens += max(1, estimate_tokens(len(text.encode())))
        digest = hashlib.sha256(text.encode()).digest()
        vector = [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIMENSIONS]]
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Reply(body=orjson.dumps(body), usage=usage)


def _prompt_text(typed: ChatBody | CompletionBody) -> str:
    if isinstance(typed, CompletionBody):
        return typed.prompt if isinstance(typed.prompt, str) else " ".join(map(str, typed.prompt))
    for message in reversed(typed.messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _reply_text(prompt: str) -> str:
    said = " ".join(prompt.split())[:200]
    if not said:
        return "Hello from Tollway's mock model."
    return f"Hello from Tollway's mock model. You said: {said}"


def _count_prompt_tokens(typed: ChatBody | CompletionBody, prompt: str) -> int:
    if isinstance(typed, CompletionBody):
        return max(1, estimate_tokens(len(prompt.encode())))
    total = 0
    for message in typed.messages:
        content = message.content
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        total += 4 + estimate_tokens(len(text.encode()))
    return total + 3


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
