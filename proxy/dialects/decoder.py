"""What every provider's stream decoder keeps besides its deltas.

A stream opens with one ``Start`` and ends with the provider's last event, which brings the
``Finish`` (and, for most, the usage); a stream whose bytes end before that event was cut
short, and ``finish`` says so with the contract's error.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import UpstreamError, UpstreamUnreachable
from ..model import Finish, FinishReason, Start, StreamEvent, Usage, UsageReport, new_id


class BaseStreamDecoder:
    """The start/finish bookkeeping of an ``EventDecoder``; subclasses feed the frames."""

    __slots__ = ("_finished", "_model", "_started")

    # What ``finish`` says when the last event never came (names the provider's event).
    cut_short: ClassVar[str] = "the upstream stream ended before its last event"
    cut_short_error: ClassVar[type[UpstreamError]] = UpstreamUnreachable

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False

    def _start(self, out: list[StreamEvent], upstream_id: str | None, model: str = "") -> None:
        """``Start`` once, on the stream's first event: the upstream's id behind
        ``chatcmpl-`` (a fresh one when it sends none), and ``model`` when the upstream names
        one, else the deployment's."""
        if not self._started:
            self._started = True
            reply_id = "chatcmpl-" + upstream_id if upstream_id else new_id()
            out.append(Start(id=reply_id, model=model or self._model))

    def _end(self, reason: FinishReason, out: list[StreamEvent]) -> None:
        self._finished = True
        out.append(Finish(reason))

    @staticmethod
    def _report(usage: Usage | None, out: list[StreamEvent]) -> None:
        if usage is not None:
            out.append(UsageReport(usage))

    def finish(self) -> list[StreamEvent]:
        if not self._finished:
            raise self.cut_short_error(self.cut_short)
        return []
