"""A fake Anthropic Messages API following the conformance script.

Wire format from Anthropic's API reference (Messages, Streaming Messages, Errors):
``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``; a ``message`` body with
content blocks (``text``, ``tool_use``), ``stop_reason`` and ``usage`` (``input_tokens``
excludes cache reads, reported in ``cache_read_input_tokens``); streams as named SSE events
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``,
``input_json_delta``), ``content_block_stop``, ``message_delta``, ``message_stop``; errors
``{"type": "error", "error": {"type", "message"}}`` (429 ``rate_limit_error``, 529
``overloaded_error``). Besides the shared cases it answers ``CASE error_529`` and
``CASE stream_error`` (an ``error`` event mid-stream).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.providers.conformance import (
    ARG_PIECES,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT_PIECES,
    TOOL_ARGS,
    TOOL_NAME,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    reply_text,
    sse_response,
)

VERSION = "2023-06-01"
TOOL_USE_ID = "toolu_01A09q90qw90lq917835lq9"
_ERRORS = {
    400: ("invalid_request_error", "messages: prompt is too long: 300000 tokens > 200000"),
    401: ("authentication_error", "invalid x-api-key: {key}"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "model: not found"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicHarness(ProviderHarness):
    name = "anthropic"
    caching = True
    model = "claude-fake-1"

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {
            "model": f"anthropic/{self.model}",
            "api_base": self.origin,
            "api_key": self.api_key,
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages)]

    def check(self, case: str, received: Received) -> None:
        assert received.headers["x-api-key"] == self.api_key
        assert received.headers["anthropic-version"] == VERSION
        assert "authorization" not in received.headers
        assert self.api_key not in received.path + str(received.query)
        body = received.json
        assert body["model"] == self.model
        assert isinstance(body["max_tokens"], int)
        if case in ("tools", "stream_tools"):
            (tool,) = body["tools"]
            assert tool["name"] == TOOL_NAME
            assert tool["input_schema"]["properties"]["city"] == {"type": "string"}
            assert body["tool_choice"] == {"type": "auto"}
        if case == "json":
            assert "JSON" in _system_text(body)
        if case.startswith("stream"):
            assert body["stream"] is True

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        if received.headers.get("x-api-key") != self.api_key:
            return _error(401, received.headers.get("x-api-key", ""))
        if received.headers.get("anthropic-version") != VERSION:
            return _error(400, "")
        body: dict[str, Any] = received.json
        messages: list[dict[str, Any]] = body["messages"]
        case = case_of(_last_user_text(messages)) or "text"
        status = error_status(case)
        if status is not None:
            return _error(status, self.api_key)
        if body.get("stream"):
            return await sse_response(request, _stream_events(case, body))
        if case == "tools":
            content = [
                {"type": "tool_use", "id": TOOL_USE_ID, "name": TOOL_NAME, "input": TOOL_ARGS}
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": reply_text(case, **_facts(body))}]
            stop = "end_turn"
        return json_response(
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _usage(COMPLETION_TOKENS),
            }
        )


def _usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHED_TOKENS,
        "output_tokens": output_tokens,
    }


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        texts = [b["text"] for b in _blocks(message["content"]) if b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if system is None:
        return ""
    return "\n".join(b["text"] for b in _blocks(system) if b.get("type") == "text")


def _facts(body: dict[str, Any]) -> dict[str, Any]:
    image = tool_result = None
    tool_uses: set[str] = set()
    for message in body["messages"]:
        for block in _blocks(message["content"]):
            kind = block.get("type")
            if kind == "image":
                source = block["source"]
                image = source["media_type"] if source["type"] == "base64" else source["url"]
            elif kind == "tool_use":
                tool_uses.add(block["id"])
            elif kind == "tool_result" and block["tool_use_id"] in tool_uses:
                inner = block.get("content")
                tool_result = (
                    inner if isinstance(inner, str) else "".join(b["text"] for b in _blocks(inner))
                )
    return {
        "system": _system_text(body) or None,
        "turns": len(body["messages"]),
        "image": image,
        "tool_result": tool_result,
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _stream_events(case: str, body: dict[str, Any]) -> list[bytes]:
    message = {
        "id": "msg_01StreamFake",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": body["model"],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(1),
    }
    events = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event("ping", {"type": "ping"}),
    ]

    def block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            events.append(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))

    stop = "end_turn"
    if case == "stream_tools":
        # Claude often says something before calling a tool: the tool is content block 1
        # but OpenAI's tool call 0.
        block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Checking."}])
        start = {"type": "tool_use", "id": TOOL_USE_ID, "name": TOOL_NAME, "input": {}}
        pieces = [{"type": "input_json_delta", "partial_json": ""}]
        pieces += [{"type": "input_json_delta", "partial_json": p} for p in ARG_PIECES]
        block(1, start, pieces)
        stop = "tool_use"
    else:
        block(
            0,
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in TEXT_PIECES],
        )
    if case == "stream_error":
        error = {"type": "overloaded_error", "message": "Overloaded"}
        events.append(_event("error", {"type": "error", "error": error}))
        return events
    events.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        )
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def _error(status: int, key: str) -> web.Response:
    type_, message = _ERRORS[status]
    headers = {"retry-after": "3"} if status in (429, 529) else {}
    payload = {"type": "error", "error": {"type": type_, "message": message.format(key=key)}}
    return json_response(payload, status, **headers)


HARNESS = AnthropicHarness()
