"""``POST /v1/messages``: Anthropic Messages clients, served by any deployment.

The route is the hot path's (``InferenceRoute``: bounded body, auth by ``x-api-key`` or
Bearer, model allowlist, route → admit → call, stream or return, settle in ``finally``)
with three differences:

- parse: the Anthropic body is translated to an OpenAI chat body once, and both travel in
  a ``MessagesRequest``. An ``anthropic/`` deployment sends the client's own bytes upstream
  (only ``model`` rewritten) and its reply comes back untouched (``answered_natively``);
  every other provider gets the OpenAI body like any chat request.
- adapt: an OpenAI-format reply (JSON, or chunk SSE) is translated back to an Anthropic
  ``message`` or to Anthropic's stream events. Streams always ask for the usage chunk, which
  becomes the ``message_delta`` usage, so the client and the ledger both see it.
- errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` (an
  ``event: error`` in a stream), with the contract's statuses.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError
from ..formats.translate import SSEParser, text_of
from ..hotpath import Call, InferenceRoute, Receive, Scope, Send
from ..parse import Kind, parse
from ..providers.anthropic import MessagesRequest
from ..providers.base import EVENT_STREAM, Reply
from ..usage import Usage

if TYPE_CHECKING:
    from ..app import GatewayState
    from ..auth import Principal

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Client headers an ``anthropic/`` deployment receives as they are (beta features).
FORWARDED_HEADERS = (b"anthropic-beta",)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

_forwarded: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("anthropic_headers")


class MessagesRoute(InferenceRoute):
    def __init__(self, state: GatewayState) -> None:
        super().__init__(state, Kind.CHAT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        forwarded = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in FORWARDED_HEADERS
        }
        token = _forwarded.set(forwarded)
        try:
            await super().__call__(scope, receive, send)
        finally:
            _forwarded.reset(token)

    async def exchange(self, call: Call, principal: Principal, body: bytes) -> Reply:
        call.request = request = parse_messages(body, _forwarded.get({}))
        self.state.accounting.check_models(principal, request.model)
        reply = await self.state.dispatch(call, principal, request)
        if request.answered_natively:
            return reply
        return to_messages_reply(reply, request.model)

    def error_body(self, exc: TollwayError) -> bytes:
        kind = _ERROR_TYPES.get(exc.status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": exc.message}})

    def stream_error(self, exc: TollwayError) -> bytes:
        return b"event: error\ndata: " + self.error_body(exc) + b"\n\n"


# -- request: Anthropic → OpenAI ---------------------------------------------------------


def parse_messages(body: bytes, forwarded: dict[str, str] | None = None) -> MessagesRequest:
    """Validate a Messages body and carry it with its OpenAI chat translation."""
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if not isinstance(payload.get("messages"), list):
        raise InvalidRequest("`messages` must be a list of messages", param="messages")
    max_tokens = payload.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequest("`max_tokens` must be a positive integer", param="max_tokens")
    chat = messages_to_chat(payload)
    base = parse(Kind.CHAT, orjson.dumps(chat))
    fields = msgspec.structs.asdict(base)
    fields["prompt_bytes"] = len(body)
    return MessagesRequest(**fields, native_body=body, native_headers=forwarded or {})


def messages_to_chat(payload: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body as an OpenAI chat body."""
    messages: list[dict[str, Any]] = []
    system = payload.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for message in payload["messages"]:
        if not isinstance(message, dict):
            raise InvalidRequest("every message must be an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            messages.append(_assistant(content))
        elif role == "user":
            messages.extend(_user(content))
        else:
            raise InvalidRequest(f"unknown message role {role!r}", param="messages")
    chat: dict[str, Any] = {"model": payload.get("model"), "messages": messages}
    if payload.get("max_tokens") is not None:
        chat["max_tokens"] = payload["max_tokens"]
    for name in ("temperature", "top_p"):
        if payload.get(name) is not None:
            chat[name] = payload[name]
    if payload.get("stop_sequences"):
        chat["stop"] = list(payload["stop_sequences"])
    user = (payload.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = str(user)
    tools = [_tool(t) for t in payload.get("tools") or [] if t.get("type") in (None, "custom")]
    if tools:
        chat["tools"] = tools
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "any", "none"):
            chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        if choice.get("disable_parallel_tool_use") and tools:
            chat["parallel_tool_calls"] = False
    if payload.get("stream"):
        chat["stream"] = True
        # Always: the usage chunk becomes message_delta's usage, and the ledger's.
        chat["stream_options"] = {"include_usage": True}
    return chat


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        str(b.get("text", "")) for b in content or [] if isinstance(b, dict) and "text" in b
    )


def _assistant(content: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(content, str):
        out["content"] = content
        return out
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    if texts:
        out["content"] = "".join(texts)
    if calls:
        out["tool_calls"] = calls
    return out


def _user(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "tool_result":
            # OpenAI wants the tool results right after the assistant's calls.
            result = block.get("content")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": result if isinstance(result, str) else _text(result),
                }
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            else:
                url = str(source.get("url") or "")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "document":
            source = block.get("source") or {}
            if source.get("type") == "text":
                parts.append({"type": "text", "text": source.get("data") or ""})
    if parts:
        simple = all(p["type"] == "text" for p in parts)
        joined = "".join(p["text"] for p in parts) if simple else parts
        out.append({"role": "user", "content": joined})
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.get("name"),
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


# -- reply: OpenAI → Anthropic -----------------------------------------------------------


def to_messages_reply(reply: Reply, model: str) -> Reply:
    if reply.chunks is not None:
        stream = MessagesStream(model)
        return Reply(
            status=reply.status,
            content_type=EVENT_STREAM,
            chunks=stream.run(reply.chunks),
            usage_of_stream=reply.final_usage,
            close=reply.close,
        )
    body = chat_to_message(orjson.loads(reply.body or b"{}"), model)
    return Reply(status=reply.status, body=body, usage=reply.usage)


def anthropic_usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = usage.cached_tokens
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": usage.completion_tokens,
    }


def chat_to_message(payload: dict[str, Any], model: str) -> bytes:
    """An OpenAI ``chat.completion`` body as an Anthropic ``message`` body."""
    choices = payload.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": _json_object(function.get("arguments")),
            }
        )
    raw_usage = payload.get("usage")
    usage = msgspec.convert(raw_usage, Usage) if isinstance(raw_usage, dict) else None
    return orjson.dumps(
        {
            "id": "msg_" + str(payload.get("id") or ""),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(usage),
        }
    )


def _json_object(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesStream:
    """OpenAI chunk events in, Anthropic stream events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.finished = False
        self.index = -1
        # The open content block: "text", "thinking", or a tool call's OpenAI index.
        self.open: str | int | None = None
        self.tools: dict[int, int] = {}
        self.stop_reason = "end_turn"
        self.usage: Usage | None = None

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        parser = SSEParser()
        async for chunk in chunks:
            out = b"".join(self.on(event.data) for event in parser.feed(chunk))
            if out:
                yield out
        out = b"".join(self.on(event.data) for event in parser.finish())
        out += self.end()
        if out:
            yield out

    def on(self, data: bytes) -> bytes:
        if self.finished or not data:
            return b""
        if data == b"[DONE]":
            return self.end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        out = [self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self.usage = msgspec.convert(chunk["usage"], Usage)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(self._open("thinking", {"type": "thinking", "thinking": ""}))
                out.append(
                    self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]})
                )
            if delta.get("content"):
                out.append(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                out.append(self._tool_delta(call))
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return b"".join(out)

    def end(self) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        usage = anthropic_usage(self.usage)
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        return b"".join(
            (
                self._start({}),
                self._close(),
                _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                _event("message_stop", {"type": "message_stop"}),
            )
        )

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": "msg_" + str(chunk.get("id") or ""),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str | int, block: dict[str, Any]) -> bytes:
        if self.open == kind:
            return b""
        closed = self._close()
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return closed + _event("content_block_start", start)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        event = {
            "type": "content_block_delta",
            "index": self.index if index is None else index,
            "delta": delta,
        }
        return _event("content_block_delta", event)

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        out = b""
        if position not in self.tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{position}",
                "name": function.get("name") or "",
                "input": {},
            }
            out = self._open(position, block)
            self.tools[position] = self.index
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += self._delta(delta, self.tools[position])
        return out
