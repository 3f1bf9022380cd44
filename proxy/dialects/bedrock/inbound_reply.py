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
from ...model import ChatReply, FinishReason, StreamEvent, ToolCallDelta, Usage
from ...upstream.eventstream import encode_message
from ..inbound import (
    ChoiceEvent,
    NumberedBlocks,
    finish_word,
    finish_words,
    message_error,
    reply_arguments,
)

STOP_REASONS = finish_words(
    stop="end_turn", length="max_tokens", tool_calls="tool_use", content_filter="content_filtered"
)
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
    return message_error(exc)


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
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.function.name,
                    "input": reply_arguments(call),
                }
            }
        )
    if not content:
        # SDK users read ``content[0]["text"]``: an empty answer is one empty text block.
        content.append({"text": ""})
    return orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": finish_word(STOP_REASONS, choice.finish_reason),
            "usage": converse_usage(reply.usage),
            "metrics": {"latencyMs": 0},
        }
    )


def _event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": name,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps(payload))


class ConverseStreamEncoder(NumberedBlocks):
    """Stateful: common stream events in, ConverseStream event-stream messages out.

    ``messageStart`` opens the stream; text and reasoning deltas go in content blocks that
    open as the kind of delta changes (Bedrock sends no ``contentBlockStart`` for them), a
    tool call opens its block with ``contentBlockStart``; ``Finish`` closes the open block
    and sends ``messageStop``; ``metadata`` with the latest usage comes at ``finish``.
    Only choice 0 is relayed: a Converse reply has one message.
    """

    __slots__ = ("_started", "_stop_reason", "_stopped")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._stopped = False
        self._stop_reason = "end_turn"

    def _opening(self, event: StreamEvent) -> bytes:
        return self._start()

    def _relays(self, event: ChoiceEvent) -> bool:
        return event.choice == 0 and not self._stopped

    def _text(self, text: str) -> bytes:
        return self._open_block("text") + self._delta({"text": text})

    def _reasoning(self, text: str) -> bytes:
        return self._open_block("reasoning") + self._delta({"reasoningContent": {"text": text}})

    def _finish(self, reason: FinishReason) -> bytes:
        self._stop_reason = finish_word(STOP_REASONS, reason)
        return self._stop()

    def _trailer(self) -> bytes:
        metadata = {"usage": converse_usage(self._usage), "metrics": {"latencyMs": 0}}
        return self._start() + self._stop() + _event("metadata", metadata)

    def error(self, exc: TollwayError) -> bytes:
        """An ``exception`` message named by the status's Bedrock exception type."""
        self._done = True
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

    def _block_start(self, kind: str, call: ToolCallDelta | None) -> bytes:
        # Bedrock starts only a tool call's block; text and reasoning blocks just begin.
        if call is None:
            return b""
        tool = {"toolUseId": call.id or f"tooluse_{call.index}", "name": call.name or ""}
        start = {"contentBlockIndex": self._index, "start": {"toolUse": tool}}
        return _event("contentBlockStart", start)

    def _block_stop(self) -> bytes:
        return _event("contentBlockStop", {"contentBlockIndex": self._index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        block = self._index if index is None else index
        return _event("contentBlockDelta", {"contentBlockIndex": block, "delta": delta})

    def _tool_call(self, call: ToolCallDelta) -> bytes:
        out, index = self._open_tool(call)
        if call.arguments:
            out += self._delta({"toolUse": {"input": call.arguments}}, index)
        return out
