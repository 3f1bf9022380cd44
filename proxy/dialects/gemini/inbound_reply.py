"""Replies to a ``generateContent`` client: a ``ChatReply`` as a ``GenerateContentResponse``,
stream events as ``streamGenerateContent?alt=sse`` events, the contract's errors in Google's
``google.rpc`` shape.

Usage goes back in Gemini's meaning (the inverse of the outbound ``reply_usage``):
``candidatesTokenCount`` excludes the thinking tokens, which are ``thoughtsTokenCount``.
A tool call id carrying a signature (``<id>__thought__<signature>``) is split back into the
call's ``id`` and the part's ``thoughtSignature``.
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
    ToolCall,
    ToolCallDelta,
    Usage,
    new_id,
)
from ..inbound import (
    StreamEncoder,
    bare_id,
    finish_word,
    finish_words,
    reply_arguments,
)
from .request import SIGNATURE_MARK

# Gemini has no finish reason of its own for a call: the call parts say it.
FINISH_REASONS = finish_words(
    stop="STOP", length="MAX_TOKENS", tool_calls="STOP", content_filter="SAFETY"
)
# The contract's statuses as google.rpc status words (Google's SDKs pick errors by code).
ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def usage_metadata(usage: Usage | None) -> dict[str, int]:
    """OpenAI-meaning usage as Gemini's ``usageMetadata``."""
    if usage is None:
        return {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    thoughts = usage.reasoning_tokens
    meta = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - thoughts,
        "totalTokenCount": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def call_part(call: ToolCall) -> dict[str, Any]:
    """A tool call as a ``functionCall`` part, its signature given back beside it."""
    ident, mark, signature = call.id.partition(SIGNATURE_MARK)
    function: dict[str, Any] = {"name": call.function.name, "args": reply_arguments(call)}
    if ident:
        function["id"] = ident
    part: dict[str, Any] = {"functionCall": function}
    if mark and signature:
        part["thoughtSignature"] = signature
    return part


def _candidate(parts: list[dict[str, Any]], reason: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if reason is not None:
        candidate["finishReason"] = finish_word(FINISH_REASONS, reason)
    return candidate


def encode_reply(reply: ChatReply) -> bytes:
    """A ``ChatReply`` as a ``GenerateContentResponse`` (``modelVersion`` is ``reply.model``)."""
    choice = reply.choices[0]
    message = choice.message
    parts: list[dict[str, Any]] = []
    if message.reasoning_content:
        parts.append({"text": message.reasoning_content, "thought": True})
    text = message.text()
    if text:
        parts.append({"text": text})
    parts.extend(call_part(call) for call in message.tool_calls or ())
    return orjson.dumps(
        {
            "candidates": [_candidate(parts, choice.finish_reason or "stop")],
            "usageMetadata": usage_metadata(reply.usage),
            "modelVersion": reply.model,
            "responseId": bare_id(reply.id),
        }
    )


def error_body(exc: TollwayError) -> dict[str, Any]:
    """The ``{"error": {code, message, status}}`` object for ``exc``; a delay to wait
    (``retry-after``) rides in a ``RetryInfo`` detail, as Google sends it."""
    status = ERROR_STATUSES.get(
        exc.status, "INTERNAL" if exc.status >= 500 else "FAILED_PRECONDITION"
    )
    error: dict[str, Any] = {"code": exc.status, "message": exc.message, "status": status}
    retry_after = exc.headers.get("retry-after")
    if retry_after:
        error["details"] = [{"@type": _RETRY_INFO, "retryDelay": f"{retry_after}s"}]
    return {"error": error}


def encode_error(exc: TollwayError) -> bytes:
    return orjson.dumps(error_body(exc))


def _event(data: dict[str, Any]) -> bytes:
    # Google's SSE separates events with CRLF pairs.
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


class GeminiStreamEncoder(StreamEncoder):
    """Stateful: common stream events in, ``streamGenerateContent?alt=sse`` events out.

    Text and thoughts go out as they come, one event each. Gemini sends a function call
    whole, so tool call pieces are held (by index) and go out in the last event, with the
    ``finishReason`` and the ``usageMetadata``: both come after the deltas in the common
    stream (the usage report after the finish), so the last event is written by ``finish``.
    """

    __slots__ = ("_calls", "_id", "_model", "_reason")

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._id = ""
        self._calls: dict[int, ToolCall] = {}
        self._reason = "stop"

    def _opening(self, event: StreamEvent) -> bytes:
        if isinstance(event, Start):
            self._id = bare_id(event.id)
        return b""

    def _text(self, text: str) -> bytes:
        return self._chunk([{"text": text}])

    def _reasoning(self, text: str) -> bytes:
        return self._chunk([{"text": text, "thought": True}])

    def _finish(self, reason: FinishReason) -> bytes:
        self._reason = reason
        return b""

    def _trailer(self) -> bytes:
        parts = [call_part(self._calls[i]) for i in sorted(self._calls)]
        data = self._response(_candidate(parts, self._reason))
        data["usageMetadata"] = usage_metadata(self._usage)
        return _event(data)

    def error(self, exc: TollwayError) -> bytes:
        self._done = True
        return _event(error_body(exc))

    def _tool_call(self, delta: ToolCallDelta) -> bytes:
        # Held whole: Gemini sends a function call in one part.
        call = self._calls.get(delta.index)
        if call is None:
            call = self._calls[delta.index] = ToolCall(id=delta.id or "")
            call.function.arguments = ""
        elif delta.id and not call.id:
            call.id = delta.id
        if delta.name and not call.function.name:
            call.function.name = delta.name
        call.function.arguments = str(call.function.arguments or "") + delta.arguments
        return b""

    def _chunk(self, parts: list[dict[str, Any]]) -> bytes:
        return _event(self._response(_candidate(parts)))

    def _response(self, candidate: dict[str, Any]) -> dict[str, Any]:
        if not self._id:
            self._id = bare_id(new_id())
        return {"candidates": [candidate], "modelVersion": self._model, "responseId": self._id}
