"""Gemini's ``streamGenerateContent?alt=sse`` events as common stream events.

Each SSE event is a whole ``GenerateContentResponse`` carrying the next text, or whole
function calls, and (cumulative) ``usageMetadata``; the last carries ``finishReason``.
There is no end-of-stream event: a stream whose bytes end before a finish was cut short.
"""

from __future__ import annotations

import msgspec

from ...errors import UpstreamError
from ...model import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..base import Frame
from ..decoder import BaseStreamDecoder
from .fault import in_band_error
from .reply import (
    RESPONSE_DECODER,
    GenerateContentResponse,
    call_arguments,
    call_id,
    finish,
    reply_usage,
)


class GeminiStreamDecoder(BaseStreamDecoder):
    """Frames in, ``Start`` / deltas / ``Finish`` out, and a ``UsageReport`` after an event's
    deltas whenever the usage it repeats has changed (some arrive after the finish), so a
    stream cut before its finish is still billed for what was reported."""

    __slots__ = ("_calls", "usage")

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._calls = 0
        # The latest usage reported, readable when the stream fails before ``finish``.
        self.usage: Usage | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        if not frame.data.strip():
            return []
        try:
            decoded = RESPONSE_DECODER.decode(frame.data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("the upstream sent an event that is not Gemini's JSON") from exc
        if decoded.error is not None:
            raise in_band_error(decoded.error)
        out: list[StreamEvent] = []
        self._start(out, decoded.response_id)
        if not self._finished:
            self._deltas(decoded, out)
        found = reply_usage(decoded.usage_metadata)
        if found is not None and found != self.usage:
            self.usage = found
            self._report(found, out)
        return out

    def _deltas(self, decoded: GenerateContentResponse, out: list[StreamEvent]) -> None:
        if decoded.blocked:
            self._end("content_filter", out)
        for candidate in decoded.candidates[:1]:
            for part in candidate.part_list():
                call = part.function_call
                if call is not None:
                    # Gemini sends a call whole: its arguments go out with its id and name.
                    out.append(
                        ToolCallDelta(
                            index=self._calls,
                            id=call_id(part),
                            name=call.name,
                            arguments=call_arguments(call),
                        )
                    )
                    self._calls += 1
                elif part.text:
                    delta = ReasoningDelta if part.thought else TextDelta
                    out.append(delta(part.text))
            if candidate.finish_reason:
                self._end(finish(candidate.finish_reason, self._calls > 0), out)
