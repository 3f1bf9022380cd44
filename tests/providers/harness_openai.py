"""A fake OpenAI Chat Completions server following the conformance script (pass-through path).

Wire format from OpenAI's API reference: ``POST /v1/chat/completions`` with
``Authorization: Bearer``; ``chat.completion`` bodies, ``chat.completion.chunk`` SSE events
ending in ``data: [DONE]``, a usage-only chunk (``choices: []``) when
``stream_options.include_usage`` is set; errors ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from tests.providers.conformance import (
    ARG_PIECES,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT_PIECES,
    TOOL_ARGS_JSON,
    TOOL_CALL_ID,
    TOOL_NAME,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    last_user_text,
    mime_of_data_url,
    reply_text,
    sse_response,
)

_ERRORS = {
    400: ("invalid_request_error", "context_length_exceeded", "The prompt is too long."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
}


class OpenAIHarness(ProviderHarness):
    name = "openai"
    caching = True

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {
            "model": "openai/gpt-fake",
            "api_base": f"{self.origin}/v1",
            "api_key": self.api_key,
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat)]

    def check(self, case: str, received: Received) -> None:
        assert received.headers.get("authorization") == f"Bearer {self.api_key}"
        body = received.json
        assert body["model"] == "gpt-fake"
        if case == "json":
            assert body["response_format"] == {"type": "json_object"}
        if case.startswith("stream"):
            assert body["stream_options"]["include_usage"] is True

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        if received.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, self.api_key)
        body = received.json
        messages: list[dict[str, Any]] = body["messages"]
        case = case_of(last_user_text(messages)) or "text"
        status = error_status(case)
        if status is not None:
            return _error(status, self.api_key)
        if body.get("stream"):
            return await sse_response(request, _stream_events(case, body))
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "stop"
        if case == "tools":
            message["tool_calls"] = [_tool_call(TOOL_ARGS_JSON)]
            finish = "tool_calls"
        else:
            message["content"] = reply_text(case, **_facts(messages))
        return json_response(
            {
                "id": "chatcmpl-conf",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": _usage(),
            }
        )


def _facts(messages: list[dict[str, Any]]) -> dict[str, Any]:
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    tool = next((m["content"] for m in messages if m["role"] == "tool"), None)
    image = None
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    image = mime_of_data_url(url) if url.startswith("data:") else url
    turns = sum(1 for m in messages if m["role"] != "system")
    return {"system": system, "turns": turns, "image": image, "tool_result": tool}


def _tool_call(arguments: str) -> dict[str, Any]:
    return {
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": arguments},
    }


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _stream_events(case: str, body: dict[str, Any]) -> list[bytes]:
    base = {
        "id": "chatcmpl-conf",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    if case == "stream_tools":
        first = {"index": 0, **_tool_call(ARG_PIECES[0])}
        events.append(chunk({"tool_calls": [first]}))
        for piece in ARG_PIECES[1:]:
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        events.append(chunk({}, "tool_calls"))
    else:
        events.extend(chunk({"content": piece}) for piece in TEXT_PIECES)
        events.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {**base, "choices": [], "usage": _usage()}
        events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _error(status: int, key: str) -> web.Response:
    type_, code, message = _ERRORS[status]
    headers = {"retry-after": "1"} if status == 429 else {}
    payload = {
        "error": {"message": message.format(key=key), "type": type_, "param": None, "code": code}
    }
    return json_response(payload, status, **headers)


HARNESS = OpenAIHarness()
