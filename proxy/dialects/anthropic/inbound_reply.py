"""Replies to a Messages client: a ``ChatReply`` as a ``message``, stream events as
Anthropic's stream events, and the contract's errors in Anthropic's shape.

Usage goes back in Anthropic's meaning: ``input_tokens`` excludes cache reads, which are
``cache_read_input_tokens``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import TollwayError
from ...model import ChatReply, FinishReason, Start, StreamEvent, ToolCallDelta, Usage
from ..inbound import NumberedBlocks, finish_word, finish_words, reply_arguments, sse_event

STOP_REASONS = finish_words(
    stop="end_turn", length="max_tokens", tool_calls="tool_use", content_filter="refusal"
)
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
                "input": reply_arguments(call),
            }
        )
    return orjson.dumps(
        {
            "id": "msg_" + reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": finish_word(STOP_REASONS, choice.finish_reason),
            "stop_sequence": None,
            "usage": anthropic_usage(reply.usage),
        }
    )


def encode_error(exc: TollwayError) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}``; the type follows the status."""
    kind = ERROR_TYPES.get(exc.status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": exc.message}})


class MessagesEncoder(NumberedBlocks):
    """Stateful: common stream events in, Anthropic stream events out.

    Content blocks open and close as the kind of delta changes (text, thinking, each tool
    call); ``message_delta`` with the stop reason and usage, then ``message_stop``, come at
    ``finish``.
    """

    __slots__ = ("_model", "_started", "_stop_reason")

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._started = False
        self._stop_reason = "end_turn"

    def _opening(self, event: StreamEvent) -> bytes:
        return self._start(event.id if isinstance(event, Start) else "")

    def _reasoning(self, text: str) -> bytes:
        opened = self._open_block("thinking")
        return opened + self._delta({"type": "thinking_delta", "thinking": text})

    def _text(self, text: str) -> bytes:
        return self._open_block("text") + self._delta({"type": "text_delta", "text": text})

    def _finish(self, reason: FinishReason) -> bytes:
        if reason:
            self._stop_reason = finish_word(STOP_REASONS, reason)
        return b""

    def _trailer(self) -> bytes:
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        usage = anthropic_usage(self._usage)
        return b"".join(
            (
                self._start(""),
                self._close(),
                sse_event(
                    "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
                ),
                sse_event("message_stop", {"type": "message_stop"}),
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
        return sse_event("message_start", {"type": "message_start", "message": message})

    def _block_start(self, kind: str, call: ToolCallDelta | None) -> bytes:
        block: dict[str, Any]
        if call is not None:
            block = {
                "type": "tool_use",
                "id": call.id or f"toolu_{call.index}",
                "name": call.name or "",
                "input": {},
            }
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": ""}
        else:
            block = {"type": "text", "text": ""}
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return sse_event("content_block_start", start)

    def _block_stop(self) -> bytes:
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        event = {
            "type": "content_block_delta",
            "index": self._index if index is None else index,
            "delta": delta,
        }
        return sse_event("content_block_delta", event)

    def _tool_call(self, call: ToolCallDelta) -> bytes:
        out, index = self._open_tool(call)
        if call.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.arguments}
            out += self._delta(delta, index)
        return out
