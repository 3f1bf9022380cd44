"""Anthropic stream events (SSE frames) as common stream events.

``message_start`` → ``Start``; text, thinking and ``input_json_delta`` pieces → text,
reasoning and tool-call deltas (the JSON-mode tool's input becomes text deltas);
``message_delta`` carries the stop reason; ``message_stop`` → ``Finish`` then ``UsageReport``.
An ``error`` event raises; a stream that ends before ``message_stop`` raises
``UpstreamUnreachable`` from ``finish``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...model import FinishReason, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from ..base import Frame
from ..decoder import BaseStreamDecoder
from .faults import stream_error
from .native import NativeUsage
from .reply import finish_reason
from .request import JSON_TOOL

# What a content block is to the client: text, reasoning, a tool call, or the JSON-mode
# tool's input (which the client sees as text).
_TEXT, _THINKING, _TOOL, _JSON = "text", "thinking", "tool", "json"


class MessagesDecoder(BaseStreamDecoder):
    """Stateful: the frames of one Messages stream in, common events out."""

    __slots__ = ("_blocks", "_counts", "_finish", "_json_tool", "_tool_calls")
    cut_short = "the upstream stream ended before message_stop"

    def __init__(self, model: str, json_tool: bool) -> None:
        super().__init__(model)
        self._json_tool = json_tool
        self._counts = NativeUsage()
        # content block index → (its kind, its OpenAI tool-call index)
        self._blocks: dict[int, tuple[str, int]] = {}
        self._tool_calls = 0
        self._finish: FinishReason = "stop"

    def feed(self, frame: Frame) -> list[StreamEvent]:
        if not frame.data or self._finished:
            return []
        try:
            data = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or frame.event
        self._counts.absorb(data)
        events: list[StreamEvent] = []
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            self._start(events, str(message.get("id") or ""), str(message.get("model") or ""))
            return events
        if kind == "error":
            raise stream_error(data.get("error"))
        if not self._started:
            return []
        if kind == "content_block_start":
            block = data.get("content_block")
            return self._block_start(_index(data), block if isinstance(block, dict) else {})
        if kind == "content_block_delta":
            delta = data.get("delta")
            return self._block_delta(_index(data), delta if isinstance(delta, dict) else {})
        if kind == "message_delta":
            delta = data.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if reason:
                self._finish = finish_reason(reason, bool(self._tool_calls))
            return []
        if kind == "message_stop":
            self._end(self._finish, events)
            # Usage is final only once message_delta brought the output count.
            self._report(self._counts.usage, events)
        return events

    def _block_start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "tool_use":
            if self._json_tool and block.get("name") == JSON_TOOL:
                self._blocks[index] = (_JSON, 0)
                return []
            # Content blocks count text too; OpenAI's tool-call indexes count only calls.
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = (_TOOL, position)
            return [
                ToolCallDelta(
                    index=position,
                    id=str(block.get("id") or ""),
                    name=str(block.get("name") or ""),
                )
            ]
        if kind == "thinking":
            self._blocks[index] = (_THINKING, 0)
            text = block.get("thinking") or ""
            return [ReasoningDelta(text)] if text else []
        self._blocks[index] = (_TEXT, 0)
        text = block.get("text") or ""
        return [TextDelta(text)] if text else []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[StreamEvent]:
        kind, position = self._blocks.get(index, (_TEXT, 0))
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            text = delta.get("text") or ""
            return [TextDelta(text)] if text else []
        if delta_type == "input_json_delta":
            piece = delta.get("partial_json") or ""
            if not piece:
                return []
            if kind == _JSON:
                return [TextDelta(piece)]
            return [ToolCallDelta(index=position, arguments=piece)]
        if delta_type == "thinking_delta":
            text = delta.get("thinking") or ""
            return [ReasoningDelta(text)] if text else []
        return []


def _index(data: dict[str, Any]) -> int:
    try:
        return int(data.get("index") or 0)
    except (TypeError, ValueError):
        return 0
