"""Responses SSE events (an upstream's stream) as common stream events.

``response.created`` → ``Start``; ``response.output_text.delta`` (and ``refusal.delta``) →
text; ``response.reasoning_summary_text.delta`` (and raw ``reasoning_text.delta``) →
reasoning, parts separated by a blank line as in the whole reply; a ``function_call``
item's ``response.output_item.added`` → a tool-call delta with its id and name, and
``response.function_call_arguments.delta`` its arguments; ``response.completed`` /
``response.incomplete`` → ``Finish`` then ``UsageReport``. ``error`` and
``response.failed`` raise; a stream that ends before its last event raises
``UpstreamUnreachable`` from ``finish``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...model import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from ..base import Frame
from ..decoder import BaseStreamDecoder
from .outbound_reply import (
    REASONING_SEPARATOR,
    WireError,
    WireItem,
    WireResponse,
    failure,
    finish_reason,
    usage_of,
)

_DONE = b"[DONE]"
_TEXT_EVENTS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_ENDS = frozenset({"response.completed", "response.incomplete"})


class _Event(msgspec.Struct):
    type: str = ""
    delta: str | None = None
    output_index: int = 0
    content_index: int = 0
    summary_index: int = 0
    item: WireItem | None = None
    response: WireResponse | None = None
    arguments: str | None = None
    code: Any = None
    message: Any = None
    param: Any = None


_event_decoder = msgspec.json.Decoder(_Event)


class ResponsesDecoder(BaseStreamDecoder):
    """Stateful: the SSE frames of one Responses stream in, common events out (frames that
    are not JSON events are skipped, as in OpenAI's chunk streams)."""

    __slots__ = ("_argued", "_calls", "_reasoning_part")
    cut_short = "the upstream stream ended before response.completed"

    def __init__(self, model: str) -> None:
        super().__init__(model)
        # output_index of a function_call item → its OpenAI tool-call index
        self._calls: dict[int, int] = {}
        # tool-call indexes whose arguments have come (in deltas or whole)
        self._argued: set[int] = set()
        # (output_index, kind, part index) of the reasoning part being streamed
        self._reasoning_part: tuple[int, str, int] | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        data = frame.data
        if self._finished or not data or data == _DONE:
            return []
        try:
            event = _event_decoder.decode(data)
        except msgspec.DecodeError:
            return []
        kind = event.type or frame.event or ""
        if kind == "error":
            raise failure(WireError(code=_text(event.code), message=_text(event.message)))
        if kind == "response.failed":
            raise failure(event.response.error if event.response is not None else None)
        events: list[StreamEvent] = []
        created = event.response if kind == "response.created" else None
        self._start(events, created.id if created else None, created.model if created else "")
        if kind in _TEXT_EVENTS:
            if event.delta:
                events.append(TextDelta(event.delta))
        elif kind == "response.reasoning_summary_text.delta":
            events += self._reasoning((event.output_index, "summary", event.summary_index), event)
        elif kind == "response.reasoning_text.delta":
            events += self._reasoning((event.output_index, "text", event.content_index), event)
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = event.item
            if item is not None and item.type == "function_call":
                events += self._call_item(event.output_index, item)
        elif kind == "response.function_call_arguments.delta":
            position = self._calls.get(event.output_index)
            if position is not None and event.delta:
                self._argued.add(position)
                events.append(ToolCallDelta(index=position, arguments=event.delta))
        elif kind == "response.function_call_arguments.done":
            events += self._whole_arguments(event.output_index, event.arguments)
        elif kind in _ENDS:
            self._complete(event.response, events)
        return events

    def _reasoning(self, part: tuple[int, str, int], event: _Event) -> list[StreamEvent]:
        text = event.delta
        if not text:
            return []
        if self._reasoning_part is not None and self._reasoning_part != part:
            text = REASONING_SEPARATOR + text
        self._reasoning_part = part
        return [ReasoningDelta(text)]

    def _call_item(self, output_index: int, item: WireItem) -> list[StreamEvent]:
        """A function_call item: its id and name when first seen (``added``; ``done`` for
        servers that send only that), and its arguments if no delta brought them."""
        position = self._calls.get(output_index)
        if position is None:
            position = self._calls[output_index] = len(self._calls)
            delta = ToolCallDelta(index=position, id=item.call_id or "", name=item.name or "")
            if item.arguments:
                self._argued.add(position)
                delta.arguments = item.arguments
            return [delta]
        return self._whole_arguments(output_index, item.arguments)

    def _whole_arguments(self, output_index: int, arguments: str | None) -> list[StreamEvent]:
        position = self._calls.get(output_index)
        if position is None or position in self._argued or not arguments:
            return []
        self._argued.add(position)
        return [ToolCallDelta(index=position, arguments=arguments)]

    def _complete(self, response: WireResponse | None, events: list[StreamEvent]) -> None:
        response = response if response is not None else WireResponse(status="completed")
        called = bool(self._calls) or any(i.type == "function_call" for i in response.output)
        self._end(finish_reason(response, called), events)
        self._report(usage_of(response.usage), events)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
