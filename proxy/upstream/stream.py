"""The stream owner: one object owns an upstream streamed response from first byte to close.

``UpstreamStream`` holds the response, primes its first chunk (so a failure before any byte
reached the client can still be retried), and hands it out once, in one of two views:

- ``raw()``: the upstream's bytes as they arrive, through a byte relay that only sniffs
  usage (and drops the usage-only chunk the gateway itself asked for). Used when the client
  speaks the upstream's format and no stage asked to see events: zero re-encoding.
- ``events()``: the stream cut into frames and decoded by the provider's dialect into common
  ``StreamEvent``\\ s, for translation and for stages that observe, hold back or end a stream.
  Each ``StreamStage`` added with ``add_stage`` sees every event, in order, before the
  client does: it passes it on, changes it, holds it back (to release later) or ends the
  stream by raising. A stream with a stage is always read as events.

Either way ``usage`` is the final usage once the stream is over, and ``aclose()`` is the one
close path — on success, error, client disconnect and cancellation alike. It closes the
socket (which tells the upstream to stop generating) and tells the ``on_close`` listeners how
the stream ended (the router's health bookkeeping listens there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Protocol

from ..dialects.base import EventDecoder
from ..errors import TollwayError
from ..model import StreamEvent, Usage, UsageReport
from .errors import scrubbed
from .framing import Framer
from .sse import ByteRelay
from .transport import UpstreamResponse


class StreamOutcome:
    __slots__ = ("completed", "error", "usage")

    def __init__(self) -> None:
        self.completed = False
        self.error: TollwayError | None = None
        self.usage: Usage | None = None


CloseListener = Callable[[StreamOutcome], None]


class StreamStage(Protocol):
    """A stage that sees every event of a stream before the client does."""

    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        """What to pass on for ``event``: itself, a changed event, nothing (held back) or
        several (released). Raise a ``TollwayError`` to end the stream in band."""
        ...

    async def on_end(self) -> Sequence[StreamEvent]:
        """Whatever is still held back, released when the upstream's events end."""
        ...


class UpstreamStream:
    __slots__ = (
        "_chunks",
        "_closed",
        "_decoder",
        "_first",
        "_framer",
        "_listeners",
        "_relay",
        "_response",
        "_secrets",
        "_stages",
        "_taken",
        "format",
        "outcome",
    )

    def __init__(
        self,
        response: UpstreamResponse,
        *,
        format: str,
        framer: Callable[[], Framer],
        decoder: Callable[[], EventDecoder],
        relay: Callable[[], ByteRelay] | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self._response = response
        # The wire format of the upstream's bytes: what ``raw()`` yields.
        self.format = format
        self._framer = framer
        self._decoder = decoder
        self._relay = relay
        self._secrets = tuple(s for s in secrets if s)
        self._first: bytes | None = None
        self._taken = False
        self._closed = False
        self._listeners: list[CloseListener] = []
        self._stages: list[StreamStage] = []
        self._chunks = response.iter_chunks()
        self.outcome = StreamOutcome()

    @property
    def usage(self) -> Usage | None:
        return self.outcome.usage

    @property
    def relays_raw(self) -> bool:
        """True when ``raw()`` may be used: a byte relay exists and no stage watches."""
        return self._relay is not None and not self._stages

    def add_stage(self, stage: StreamStage) -> None:
        self._stages.append(stage)

    def on_close(self, listener: CloseListener) -> None:
        self._listeners.append(listener)

    async def prime(self) -> None:
        """Wait for the first chunk; raises (and closes) when the stream fails before it."""
        try:
            self._first = await anext(self._chunks, b"")
        except BaseException as exc:
            if isinstance(exc, TollwayError):
                self.outcome.error = scrubbed(exc, self._secrets)
            await self.aclose()
            raise

    def _take(self) -> bytes | None:
        """The primed first chunk; the stream is read once, through one view."""
        if self._taken:
            raise RuntimeError("an upstream stream is read once")
        self._taken = True
        first, self._first = self._first, None
        return first

    async def raw(self) -> AsyncIterator[bytes]:
        """The upstream's bytes, untouched but for the gateway's own usage chunk.

        One generator over the socket's chunks (no nested generators): this is the hot path
        of every pass-through stream.
        """
        assert self._relay is not None, "this stream has no byte relay"
        relay = self._relay()
        outcome = self.outcome
        try:
            first = self._take()
            if first:
                out = relay.feed(first)
                if out:
                    yield out
            async for chunk in self._chunks:
                out = relay.feed(chunk)
                if out:
                    yield out
            tail = relay.finish()
            if tail:
                yield tail
            outcome.completed = True
        except TollwayError as exc:
            outcome.error = scrubbed(exc, self._secrets)
            raise
        finally:
            outcome.usage = relay.usage

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The stream as common events, decoded by the provider's dialect and passed through
        every stage in the order they were added."""
        framer = self._framer()
        decoder = self._decoder()
        outcome = self.outcome
        staged = bool(self._stages)
        try:
            first = self._take()
            chunks = [first] if first else []
            while True:
                for chunk in chunks:
                    for frame in framer.feed(chunk):
                        events = self._billed(decoder.feed(frame))
                        for event in await self._staged(events) if staged else events:
                            yield event
                try:
                    chunks = [await anext(self._chunks)]
                except StopAsyncIteration:
                    break
            tail = [e for frame in framer.finish() for e in decoder.feed(frame)]
            tail.extend(decoder.finish())
            tail = self._billed(tail)
            for event in await self._staged(tail) if staged else tail:
                yield event
            for index, stage in enumerate(self._stages):
                for event in await self._staged(await stage.on_end(), start=index + 1):
                    yield event
            outcome.completed = True
        except TollwayError as exc:
            outcome.error = scrubbed(exc, self._secrets)
            raise

    def _billed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """Record the upstream's usage before any stage sees it: what the upstream billed is
        billed, whatever a stage then holds back or ends."""
        for event in events:
            if isinstance(event, UsageReport):
                self.outcome.usage = event.usage
        return events

    async def _staged(self, events: Iterable[StreamEvent], start: int = 0) -> Sequence[StreamEvent]:
        """``events`` through the stages from ``start`` on."""
        out = events if isinstance(events, list) else list(events)
        for stage in self._stages[start:]:
            passed: list[StreamEvent] = []
            for event in out:
                passed.extend(await stage.on_event(event))
            out = passed
        return out

    async def aclose(self) -> None:
        """The one close path: idempotent; closes the socket, then tells the listeners."""
        if self._closed:
            return
        self._closed = True
        self._response.close()
        try:
            await self._chunks.aclose()
        finally:
            for listener in self._listeners:
                listener(self.outcome)
