"""ConverseStream messages as common stream events.

Events: ``messageStart``, ``contentBlockStart`` (a tool call's id and name),
``contentBlockDelta`` (text, a tool call's input JSON piece, reasoning), ``contentBlockStop``,
``messageStop`` (the stop reason) and ``metadata`` (usage, after ``messageStop``). A forced
JSON-mode tool's input streams as text. ``exception`` / ``error`` messages end the stream
with the contract's error.
"""

from __future__ import annotations

from typing import Any

from ...errors import UpstreamError
from ...model import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from ..base import Frame
from ..common import loads_object
from ..decoder import BaseStreamDecoder
from .errors import stream_exception
from .reply import finish_reason, usage_of

# The tool-call index of a content block that is the JSON-mode tool (its input is text).
_JSON_BLOCK = -1


class StreamDecoder(BaseStreamDecoder):
    """Stateful: one ConverseStream's frames in, ``StreamEvent``\\ s out."""

    __slots__ = ("_called", "_json_tool", "_tools")
    cut_short = "the Bedrock stream ended before its messageStop event"
    cut_short_error = UpstreamError

    def __init__(self, model: str, json_tool: str | None) -> None:
        super().__init__(model)
        self._json_tool = json_tool
        self._called = False
        # contentBlockIndex → tool-call index (_JSON_BLOCK: the JSON tool, read as text).
        self._tools: dict[int, int] = {}

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Events for one event-stream message; raises for an exception or error message."""
        if frame.kind in ("exception", "error"):
            raise stream_exception(frame.kind, frame.event, frame.data)
        kind = frame.event or ""
        body = loads_object(frame.data) if frame.data else {}
        if body is None:
            raise UpstreamError(f"Bedrock sent a {kind or 'stream'} event that is not JSON")
        events: list[StreamEvent] = []
        self._start(events, None)
        if kind == "contentBlockStart":
            self._block_start(body, events)
        elif kind == "contentBlockDelta":
            delta = body.get("delta")
            if isinstance(delta, dict):
                self._delta(int(body.get("contentBlockIndex", 0)), delta, events)
        elif kind == "messageStop":
            reason = finish_reason(body.get("stopReason"), self._json_tool, self._called)
            self._end(reason, events)
        elif kind == "metadata":
            self._report(usage_of(body.get("usage")), events)
        return events

    def _block_start(self, body: dict[str, Any], events: list[StreamEvent]) -> None:
        start = body.get("start")
        tool = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(tool, dict):
            return
        block = int(body.get("contentBlockIndex", 0))
        name = str(tool.get("name", ""))
        if self._json_tool is not None and name == self._json_tool:
            self._tools[block] = _JSON_BLOCK
            return
        position = sum(1 for v in self._tools.values() if v >= 0)
        self._tools[block] = position
        self._called = True
        events.append(ToolCallDelta(index=position, id=str(tool.get("toolUseId", "")), name=name))

    def _delta(self, block: int, delta: dict[str, Any], events: list[StreamEvent]) -> None:
        if "text" in delta:
            text = str(delta["text"])
            if text:
                events.append(TextDelta(text))
            return
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            piece = str(tool.get("input") or "")
            position = self._tools.get(block)
            if not piece or position is None:
                return
            if position == _JSON_BLOCK:
                events.append(TextDelta(piece))
            else:
                events.append(ToolCallDelta(index=position, arguments=piece))
            return
        thought = delta.get("reasoningContent")
        if isinstance(thought, dict) and thought.get("text"):
            events.append(ReasoningDelta(str(thought["text"])))
