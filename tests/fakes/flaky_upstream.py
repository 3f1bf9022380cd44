"""A scriptable OpenAI-compatible upstream on 127.0.0.1, port 0, for routing tests.

Each instance answers from its own script: a list of actions consumed one per request, then
``default`` for every request after that. Actions (tuples):

    ("ok",)                    a normal reply (or stream) whose text names this instance
    ("ok", seconds)            the same after a delay (before the headers)
    ("status", code)           an error in OpenAI's shape; ("status", 429, "2") adds retry-after
    ("context",)               400 context_length_exceeded
    ("policy",)                400 content_policy_violation
    ("filtered",)              200 whose choice was cut by the content filter (with usage)
    ("hang",)                  never answers
    ("stall", n)               a stream that sends n chunks, then goes silent
    ("silent_stream",)         stream headers, then nothing

It counts hits and keeps every request body, so tests can see what reached it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded import ThreadedApp

Action = tuple[Any, ...]


class FlakyUpstream(ThreadedApp):
    shutdown_connections = True

    def __init__(self, name: str, *, script: list[Action] | None = None) -> None:
        super().__init__()
        self.name = name
        self.thread_name = f"flaky-{name}"
        self.script: list[Action] = list(script or [])
        self.default: Action = ("ok",)
        self.hits = 0
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *actions: Action, default: Action | None = None) -> FlakyUpstream:
        self.script.extend(actions)
        if default is not None:
            self.default = default
        return self

    def start(self) -> FlakyUpstream:
        self.start_thread()
        return self

    def build_app(self) -> web.Application:
        app = web.Application()
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            app.router.add_post(path, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = orjson.loads(await request.read())
        self.requests.append(body)
        action = self.script.pop(0) if self.script else self.default
        kind = action[0]
        model = body.get("model", "")
        if kind == "ok" and len(action) > 1:
            await asyncio.sleep(action[1])
        if kind == "status":
            code = action[1]
            headers = {"retry-after": action[2]} if len(action) > 2 else {}
            return _error(code, f"scripted {code} from {self.name}", "scripted", headers)
        if kind == "context":
            return _error(
                400, "This model's maximum context length is 10 tokens.", "context_length_exceeded"
            )
        if kind == "policy":
            return _error(400, "Your request was rejected by safety.", "content_policy_violation")
        if kind == "hang":
            await asyncio.sleep(3600)
        if body.get("stream"):
            return await self._stream(request, model, action)
        finish = "content_filter" if kind == "filtered" else "stop"
        text = "" if kind == "filtered" else f"from {self.name}"
        return web.json_response(
            {
                "id": "chatcmpl-flaky",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def _stream(self, request: web.Request, model: str, action: Action) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        if action[0] == "silent_stream":
            await asyncio.sleep(3600)
        words = [f"from {self.name}", " part", " two", " three"]
        for i, word in enumerate(words):
            if action[0] == "stall" and i >= action[1]:
                await asyncio.sleep(3600)
            chunk = {
                "id": "chatcmpl-flaky",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(0.01)
        usage = {
            "id": "chatcmpl-flaky",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
        }
        await resp.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )
