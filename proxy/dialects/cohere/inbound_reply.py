"""Replies to a Cohere v2 chat client: a ``ChatReply`` as Cohere's chat response, stream
events as Cohere's typed SSE events (exactly the shapes the outbound ``CohereStream``
reads), the contract's errors as Cohere's ``{"message": ...}``.

Usage goes back as both ``billed_units`` and ``tokens`` (the gateway knows one count), with
``cached_tokens`` when some were cached; Cohere has no count for reasoning tokens.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import TollwayError
from ...model import (
    ChatReply,
    FinishReason,
    Start,
    StreamEvent,
    ToolCallDelta,
    Usage,
    new_id,
    tool_call_id,
)
from ..inbound import (
    StreamEncoder,
    bare_id,
    finish_word,
    finish_words,
    message_error,
    sse_event,
)

# v2 has no reason of its own for a filtered reply.
FINISH_REASONS = finish_words(
    stop="COMPLETE", length="MAX_TOKENS", tool_calls="TOOL_CALL", content_filter="ERROR"
)


def cohere_usage(usage: Usage | None) -> dict[str, Any]:
    """OpenAI-meaning usage as Cohere's ``usage`` object."""
    if usage is None:
        counts = {"input_tokens": 0, "output_tokens": 0}
        return {"billed_units": counts, "tokens": dict(counts)}
    counts = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    out: dict[str, Any] = {"billed_units": counts, "tokens": dict(counts)}
    if usage.cached_tokens:
        out["cached_tokens"] = usage.cached_tokens
    return out


def finish_reason(reason: str | None) -> str:
    return finish_word(FINISH_REASONS, reason)


def encode_reply(reply: ChatReply) -> bytes:
    """A ``ChatReply`` as a v2 chat response. An assistant that calls tools says what it
    plans in ``tool_plan``: its text goes there, as Cohere's would."""
    choice = reply.choices[0]
    message = choice.message
    text = message.text()
    out: dict[str, Any] = {"role": "assistant"}
    content: list[dict[str, Any]] = []
    if message.reasoning_content:
        content.append({"type": "thinking", "thinking": message.reasoning_content})
    if message.tool_calls:
        if text:
            out["tool_plan"] = text
        out["tool_calls"] = [
            {
                "id": call.id or tool_call_id(),
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.arguments_text()},
            }
            for call in message.tool_calls
        ]
    elif text or not content:
        content.append({"type": "text", "text": text})
    if content:
        out["content"] = content
    return orjson.dumps(
        {
            "id": bare_id(reply.id),
            "finish_reason": finish_reason(choice.finish_reason),
            "message": out,
            "usage": cohere_usage(reply.usage),
        }
    )


def encode_error(exc: TollwayError) -> bytes:
    """Cohere's error body: ``{"message": ...}`` (the status says the rest)."""
    return message_error(exc)


class CohereStreamEncoder(StreamEncoder):
    """Stateful: common stream events in, Cohere v2 stream events out.

    ``message-start`` opens the stream; a content block (text or thinking) opens and closes
    as the kind of delta changes, each tool call has its own ``tool-call-start`` /
    ``-delta`` / ``-end``; ``message-end`` with the finish reason and usage comes at
    ``finish`` (the usage report follows the finish in the common stream).
    """

    __slots__ = ("_calls", "_content", "_id", "_open", "_reason", "_started")

    def __init__(self) -> None:
        super().__init__()
        self._id = ""
        self._started = False
        self._content = -1
        self._calls: set[int] = set()
        # The open block: "text", "thinking", or a tool call's index.
        self._open: str | int | None = None
        self._reason = "stop"

    def _opening(self, event: StreamEvent) -> bytes:
        if isinstance(event, Start):
            self._id = bare_id(event.id)
        return self._start()

    def _text(self, text: str) -> bytes:
        return self._content_delta("text", text)

    def _reasoning(self, text: str) -> bytes:
        return self._content_delta("thinking", text)

    def _finish(self, reason: FinishReason) -> bytes:
        self._reason = reason
        return b""

    def _trailer(self) -> bytes:
        delta = {"finish_reason": finish_reason(self._reason), "usage": cohere_usage(self._usage)}
        end = sse_event("message-end", {"type": "message-end", "delta": delta})
        return self._start() + self._close() + end

    def error(self, exc: TollwayError) -> bytes:
        """A failed generation, as Cohere reports one: ``message-end`` with an ``error``."""
        self._done = True
        delta = {"finish_reason": "ERROR", "error": exc.message}
        return self._close() + sse_event("message-end", {"type": "message-end", "delta": delta})

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        if not self._id:
            self._id = bare_id(new_id())
        message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
                   "citations": []}  # fmt: skip
        data = {"id": self._id, "type": "message-start", "delta": {"message": message}}
        return sse_event("message-start", data)

    def _content_delta(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open != kind:
            out = self._close()
            self._open = kind
            self._content += 1
            block = {"type": kind, kind: ""}
            start = {"type": "content-start", "index": self._content,
                     "delta": {"message": {"content": block}}}  # fmt: skip
            out += sse_event("content-start", start)
        delta = {"type": "content-delta", "index": self._content,
                 "delta": {"message": {"content": {kind: text}}}}  # fmt: skip
        return out + sse_event("content-delta", delta)

    def _tool_call(self, call: ToolCallDelta) -> bytes:
        if call.index in self._calls:
            # More arguments of a call already started (even if another block opened since).
            if not call.arguments:
                return b""
            function = {"arguments": call.arguments}
            delta = {"type": "tool-call-delta", "index": call.index,
                     "delta": {"message": {"tool_calls": {"function": function}}}}  # fmt: skip
            return sse_event("tool-call-delta", delta)
        out = self._close()
        self._open = call.index
        self._calls.add(call.index)
        opened = {
            "id": call.id or tool_call_id(),
            "type": "function",
            "function": {"name": call.name or "", "arguments": call.arguments},
        }
        start = {"type": "tool-call-start", "index": call.index,
                 "delta": {"message": {"tool_calls": opened}}}  # fmt: skip
        return out + sse_event("tool-call-start", start)

    def _close(self) -> bytes:
        opened, self._open = self._open, None
        if opened is None:
            return b""
        if isinstance(opened, int):
            return sse_event("tool-call-end", {"type": "tool-call-end", "index": opened})
        return sse_event("content-end", {"type": "content-end", "index": self._content})
