"""Replies to a Converse client: a ``ChatReply`` as a Converse response, stream events as
ConverseStream's binary AWS event stream, and the contract's errors in Bedrock's shape.

The inverse of the outbound mapping (``reply`` / ``stream``): usage goes back in Bedrock's
meaning (``inputTokens`` excludes cache reads, which are ``cacheReadInputTokens``), finish
reasons as ``stopReason``, errors as ``{"message"}`` named by an exception type (the
``x-amzn-errortype`` header, or a stream ``exception`` message's ``:exception-type``).
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
from ...upstream.eventstream import encode_message

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filtered",
}
# The contract's statuses as Bedrock's exception names (the inverse of the outbound
# ``errors.ERROR_STATUS``): the AWS SDKs pick their exception class, and whether to retry,
# by this name.
ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    413: "ValidationException",
    422: "ValidationException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}
# A spent budget will not come back on a retry: the SDKs retry ThrottlingException, not this.
_BUDGET_EXCEPTION = "ServiceQuotaExceededException"
STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def error_type(status: int, kind: str | None = None) -> str:
    """The Bedrock exception name for an error of ``status`` (``kind``: the contract's error
    ``type``, when known) — the ``x-amzn-errortype`` header's value."""
    if kind == "budget_exceeded":
        return _BUDGET_EXCEPTION
    return ERROR_TYPES.get(status, "InternalServerException")


def encode_error(exc: TollwayError) -> bytes:
    """``{"message": ...}``; the pipeline names the error in ``x-amzn-errortype``
    (``error_type(exc.status, exc.type)``)."""
    return orjson.dumps({"message": exc.message})


def converse_usage(usage: Usage | None) -> dict[str, int]:
    """OpenAI-meaning usage as a Converse ``usage`` object (cache writes, which the common
    model does not tell apart, stay in ``inputTokens``)."""
    if usage is None:
        return {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    cached = usage.cached_tokens
    return {
        "inputTokens": usage.prompt_tokens - cached,
        "outputTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "cacheReadInputTokens": cached,
    }


def encode_reply(reply: ChatReply) -> bytes:
    """A ``ChatReply`` as a Converse response body."""
    choice = reply.choices[0]
    message = choice.message
    content: list[dict[str, Any]] = []
    # Bedrock puts the reasoning before the answer it led to.
    if message.reasoning_content:
        content.append({"reasoningContent": {"reasoningText": {"text": message.reasoning_content}}})
    text = message.text()
    if text:
        content.append({"text": text})
    for call in message.tool_calls or ():
        content.append(
            {"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": _input(call)}}
        )
    if not content:
        # SDK users read ``content[0]["text"]``: an empty answer is one empty text block.
        content.append({"text": ""})
    return orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": STOP_REASONS.get(choice.finish_reason or "stop", "end_turn"),
            "usage": converse_usage(reply.usage),
            "metrics": {"latencyMs": 0},
        }
    )


def _input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as ``toolUse.input``; arguments that are not a JSON object
    become ``{}`` rather than failing a reply the model already produced."""
    arguments = call.function.arguments
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": name,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps(payload))


class ConverseStreamEncoder:
    """Stateful: common stream events in, ConverseStream event-stream messages out.

    ``messageStart`` opens the stream; text and reasoning deltas go in content blocks that
    open as the kind of delta changes (Bedrock sends no ``contentBlockStart`` for them), a
    tool call opens its block with ``contentBlockStart``; ``Finish`` closes the open block
    and sends ``messageStop``; ``metadata`` with the latest usage comes at ``finish``.
    Only choice 0 is relayed: a Converse reply has one message.
    """

    __slots__ = (
        "_finished",
        "_index",
        "_open",
        "_started",
        "_stop_reason",
        "_stopped",
        "_tools",
        "_usage",
    )

    def __init__(self) -> None:
        self._started = False
        self._stopped = False
        self._finished = False
        self._index = -1
        # The open content block: "text", "reasoning", or a tool call's index.
        self._open: str | int | None = None
        # tool call index → its content block index
        self._tools: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        out = self._start()
        if isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, Start) or event.choice != 0 or self._stopped:
            pass
        elif isinstance(event, TextDelta):
            if event.text:
                out += self._open_block("text") + self._delta({"text": event.text})
        elif isinstance(event, ReasoningDelta):
            if event.text:
                out += self._open_block("reasoning")
                out += self._delta({"reasoningContent": {"text": event.text}})
        elif isinstance(event, ToolCallDelta):
            out += self._tool_delta(event)
        elif isinstance(event, Finish):
            self._stop_reason = STOP_REASONS.get(event.reason, "end_turn")
            out += self._stop()
        return out

    def finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        metadata = {"usage": converse_usage(self._usage), "metrics": {"latencyMs": 0}}
        return self._start() + self._stop() + _event("metadata", metadata)

    def error(self, exc: TollwayError) -> bytes:
        """An ``exception`` message named by the status's Bedrock exception type."""
        self._finished = True
        headers = {
            ":exception-type": error_type(exc.status, exc.type),
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return encode_message(headers, encode_error(exc))

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return _event("messageStart", {"role": "assistant"})

    def _stop(self) -> bytes:
        if self._stopped:
            return b""
        self._stopped = True
        return self._close() + _event("messageStop", {"stopReason": self._stop_reason})

    def _open_block(self, kind: str | int) -> bytes:
        if self._open == kind:
            return b""
        closed = self._close()
        self._index += 1
        self._open = kind
        return closed

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event("contentBlockStop", {"contentBlockIndex": self._index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        block = self._index if index is None else index
        return _event("contentBlockDelta", {"contentBlockIndex": block, "delta": delta})

    def _tool_delta(self, call: ToolCallDelta) -> bytes:
        position = call.index
        out = b""
        if position not in self._tools:
            out = self._open_block(position)
            self._tools[position] = self._index
            tool = {"toolUseId": call.id or f"tooluse_{position}", "name": call.name or ""}
            start = {"contentBlockIndex": self._index, "start": {"toolUse": tool}}
            out += _event("contentBlockStart", start)
        if call.arguments:
            out += self._delta({"toolUse": {"input": call.arguments}}, self._tools[position])
        return out
