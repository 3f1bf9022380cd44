"""Cohere v2's typed chat stream events → common ``StreamEvent``\\ s.

Cohere names each SSE event (``message-start``, ``content-start``/``-delta``/``-end``,
``tool-plan-delta``, ``tool-call-start``/``-delta``/``-end``, ``message-end``) and repeats the
name in the payload's ``type``. ``message-end`` carries the finish reason and usage, or an
``error`` when generation failed after the stream began.
"""

from __future__ import annotations

import msgspec

from ...errors import UpstreamError
from ...model import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, tool_call_id
from ..base import Frame
from ..common import finish_reason, upstream_failure
from ..decoder import BaseStreamDecoder
from .wire import (
    FINISH,
    Delta,
    DeltaContent,
    DeltaMessage,
    Function,
    ToolCall,
    event_decoder,
    reported_usage,
)


class CohereStream(BaseStreamDecoder):
    """Decodes one Cohere chat stream; ``finish`` raises if ``message-end`` never came."""

    __slots__ = ("_positions",)
    cut_short = "the upstream stream ended before its message-end event"

    def __init__(self, model: str) -> None:
        super().__init__(model)
        # Cohere's tool-call index → the common position, in the order calls started.
        self._positions: dict[int, int] = {}

    def feed(self, frame: Frame) -> list[StreamEvent]:
        data = frame.data.strip()
        # Whatever follows message-end is not part of the reply.
        if not data or data == b"[DONE]" or self._finished:
            return []
        try:
            decoded = event_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("the upstream sent an event that is not Cohere's JSON") from exc
        out: list[StreamEvent] = []
        self._start(out, decoded.id)
        delta = decoded.delta or Delta()
        message = delta.message or DeltaMessage()
        kind = decoded.type or frame.event
        if kind == "content-delta" and isinstance(message.content, DeltaContent):
            if message.content.thinking:
                out.append(ReasoningDelta(message.content.thinking))
            elif message.content.text:
                out.append(TextDelta(message.content.text))
        elif kind == "tool-plan-delta" and message.tool_plan:
            out.append(TextDelta(message.tool_plan))
        elif kind == "tool-call-start" and isinstance(message.tool_calls, ToolCall):
            call = message.tool_calls
            function = call.function or Function()
            out.append(
                ToolCallDelta(
                    index=self._position(decoded.index),
                    id=call.id or tool_call_id(),
                    name=function.name,
                    arguments=function.arguments,
                )
            )
        elif kind == "tool-call-delta" and isinstance(message.tool_calls, ToolCall):
            arguments = message.tool_calls.function
            if arguments is not None and arguments.arguments:
                out.append(
                    ToolCallDelta(
                        index=self._position(decoded.index), arguments=arguments.arguments
                    )
                )
        elif kind == "message-end":
            if delta.error:
                # Cohere reports no status for a failed generation: it is the upstream's 500,
                # relayed as the contract's 502.
                raise upstream_failure(500, delta.error[:2000])
            self._end(finish_reason(FINISH, delta.finish_reason, bool(self._positions)), out)
            self._report(reported_usage(delta.usage), out)
        return out

    def _position(self, index: int) -> int:
        return self._positions.setdefault(index, len(self._positions))
