"""Replies to a Messages client: a ``ChatReply`` as a ``message``, stream events as
Anthropic's stream events, and the contract's errors in Anthropic's shape.

Usage goes back in Anthropic's meaning: ``input_tokens`` excludes cache reads, which are
``cache_read_input_tokens``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import TollwayError
from ...model import (
    ChatReply,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# The contract's statuses as Anthropic's error types (the SDKs pick their exception by the
# status, some clients by the type).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_usage(usage: Usage | None) -> dict[str, int]:
    """OpenAI-meaning usage as a Messages ``usage`` object."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = usage.cached_tokens
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": usage.completion_tokens,
    }


def encode_reply(reply: ChatReply) -> bytes:
    """A ``ChatReply`` as a Messages ``message`` body (named by ``reply.model``)."""
    choice = reply.choices[0]
    message = choice.message
    content: list[dict[str, Any]] = []
    text = message.text()
    if text:
        content.append({"type": "text", "text": text})
    for call in message.tool_calls or ():
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": _input(call),
            }
        )
    return orjson.dumps(
        {
            "id": "msg_" + reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": STOP_REASONS.get(choice.finish_reason or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(reply.usage),
        }
    )


def _input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as ``tool_use.input``; arguments that are not a JSON object
    become ``{}`` rather than failing a reply the model already produced."""
    arguments = call.function.arguments
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def encode_error(exc: TollwayError) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}``; the type follows the status."""
    kind = ERROR_TYPES.get(exc.status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": exc.message}})


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesEncoder:
    """Stateful: common stream events in, Anthropic stream events out.

    Content blocks open and close as the kind of delta changes (text, thinking, each tool
    call); ``message_delta`` with the stop reason and usage, then ``message_stop``, come at
    ``finish``.
    """

    __slots__ = (
        "_finished",
        "_index",
        "_model",
        "_open",
        "_started",
        "_stop_reason",
        "_tools",
        "_usage",
    )

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False
        self._index = -1
        # The open content block: "text", "thinking", or a tool call's index.
        self._open: str | int | None = None
        # tool call index → its content block index
        self._tools: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        out = [self._start(event.id if isinstance(event, Start) else "")]
        if isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, ReasoningDelta):
            if event.text:
                out.append(self._open_block("thinking", {"type": "thinking", "thinking": ""}))
                out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        elif isinstance(event, TextDelta):
            if event.text:
                out.append(self._open_block("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": event.text}))
        elif isinstance(event, ToolCallDelta):
            out.append(self._tool_delta(event))
        elif isinstance(event, Finish) and event.reason:
            self._stop_reason = STOP_REASONS.get(event.reason, "end_turn")
        return b"".join(out)

    def finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        usage = anthropic_usage(self._usage)
        return b"".join(
            (
                self._start(""),
                self._close(),
                _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                _event("message_stop", {"type": "message_stop"}),
            )
        )

    def error(self, exc: TollwayError) -> bytes:
        return b"event: error\ndata: " + encode_error(exc) + b"\n\n"

    def _start(self, ident: str) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": "msg_" + ident,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open_block(self, kind: str | int, block: dict[str, Any]) -> bytes:
        if self._open == kind:
            return b""
        closed = self._close()
        self._index += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return closed + _event("content_block_start", start)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        event = {
            "type": "content_block_delta",
            "index": self._index if index is None else index,
            "delta": delta,
        }
        return _event("content_block_delta", event)

    def _tool_delta(self, call: ToolCallDelta) -> bytes:
        position = call.index
        out = b""
        if position not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.id or f"toolu_{position}",
                "name": call.name or "",
                "input": {},
            }
            out = self._open_block(position, block)
            self._tools[position] = self._index
        if call.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.arguments}
            out += self._delta(delta, self._tools[position])
        return out
