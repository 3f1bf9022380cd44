"""``mock/``: a built-in upstream with deterministic replies, so Tollway runs with no API key.

It is a ``Transport``, not a special case in the pipeline: the engine sends it the same
OpenAI bytes it would send OpenAI and it answers in OpenAI's exact wire format (JSON, or SSE
chunks with a usage chunk when asked), so the mock exercises the real pass-through path.
The reply is a function of the request (or ``litellm_params.mock_response``, passed in the
``x-tollway-mock-response`` header); usage is counted the same way every time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import msgspec
import orjson

from ..request import ChatBody, CompletionBody, EmbeddingBody
from ..usage import estimate_tokens
from .sse import sse_event
from .transport import Deadlines

EMBEDDING_DIMENSIONS = 8
MOCK_BASE = "mock://tollway"
RESPONSE_HEADER = "x-tollway-mock-response"

_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    "chat/completions": msgspec.json.Decoder(ChatBody),
    "completions": msgspec.json.Decoder(CompletionBody),
    "embeddings": msgspec.json.Decoder(EmbeddingBody),
}


class MockResponse:
    __slots__ = ("_chunks", "_headers", "status")

    def __init__(self, status: int, content_type: str, chunks: list[bytes]) -> None:
        self.status = status
        self._headers = {"content-type": content_type}
        self._chunks = chunks

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        self._chunks = []


class MockTransport:
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> MockResponse:
        operation = url.removeprefix(MOCK_BASE + "/")
        decoder = _decoders.get(operation)
        if decoder is None:
            return _error(404, f"the mock serves no {operation!r}")
        try:
            typed = decoder.decode(body)
        except msgspec.DecodeError as exc:
            return _error(400, str(exc))
        if isinstance(typed, EmbeddingBody):
            return MockResponse(200, "application/json", [_embedding(typed)])
        return _completion(typed, body, headers.get(RESPONSE_HEADER))

    async def close(self) -> None:
        return None


def _error(status: int, message: str) -> MockResponse:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    return MockResponse(status, "application/json", [body])


def _completion(
    typed: ChatBody | CompletionBody, body: bytes, mock_response: str | None
) -> MockResponse:
    chat = isinstance(typed, ChatBody)
    prompt = _prompt_text(typed)
    content = mock_response or _reply_text(prompt)
    words = content.split(" ")
    finish = "stop"
    limit = typed.max_tokens
    if isinstance(typed, ChatBody) and typed.max_completion_tokens is not None:
        limit = typed.max_completion_tokens
    if limit is not None and len(words) > limit:
        words, finish = words[:limit], "length"
    prompt_tokens = _count_prompt_tokens(typed, prompt)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    ident = ("chatcmpl-" if chat else "cmpl-") + "mock-" + hashlib.sha256(body).hexdigest()[:24]
    base: dict[str, Any] = {
        "id": ident,
        "object": ("chat.completion" if chat else "text_completion"),
        "created": int(time.time()),
        "model": typed.model,
    }
    if typed.stream:
        options = typed.stream_options
        with_usage = bool(options is not None and options.include_usage)
        chunks = _stream(base, chat, words, finish, usage if with_usage else None)
        return MockResponse(200, "text/event-stream", chunks)
    text = " ".join(words)
    if chat:
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    reply = {**base, "choices": [choice], "usage": usage}
    return MockResponse(200, "application/json", [orjson.dumps(reply)])


def _stream(
    base: dict[str, Any],
    chat: bool,
    words: list[str],
    finish: str,
    usage: dict[str, int] | None,
) -> list[bytes]:
    base = {**base, "object": "chat.completion.chunk" if chat else "text_completion"}
    out = []
    if chat:
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
        out.append(sse_event(orjson.dumps({**base, "choices": [_choice(role, None)]})))
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        end = finish if i == len(words) - 1 else None
        if chat:
            choice = _choice({"index": 0, "delta": {"content": piece}}, end)
        else:
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": end}
        out.append(sse_event(orjson.dumps({**base, "choices": [choice]})))
    if usage is not None:
        out.append(sse_event(orjson.dumps({**base, "choices": [], "usage": usage})))
    out.append(b"data: [DONE]\n\n")
    return out


def _choice(choice: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {**choice, "logprobs": None, "finish_reason": finish}


def _embedding(typed: EmbeddingBody) -> bytes:
    inputs = [typed.input] if isinstance(typed.input, str) else list(typed.input)
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else orjson.dumps(item).decode()
        tokens += max(1, estimate_tokens(len(text.encode())))
        digest = hashlib.sha256(text.encode()).digest()
        vector = [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIMENSIONS]]
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": typed.model, "usage": usage})


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
