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

from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

from ..dialects.base import EventDecoder, Frame
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
        "_raw_relay",
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
        # The raw view's relay, not the view: the view holds the stream, and a reference back
        # would make every stream a cycle that only the collector frees (5% more CPU per
        # stream, bench.ab).
        self._raw_relay: ByteRelay | None = None
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
                self.failed(exc)
            await self.aclose()
            raise

    def failed(self, exc: TollwayError) -> None:
        """Record how the stream failed, with the upstream's secrets scrubbed from it."""
        self.outcome.error = scrubbed(exc, self._secrets)

    def _take(self) -> bytes | None:
        """The primed first chunk; the stream is read once, through one view."""
        if self._taken:
            raise RuntimeError("an upstream stream is read once")
        self._taken = True
        first, self._first = self._first, None
        return first

    def raw(self) -> RawBytes:
        """The upstream's bytes, untouched but for the gateway's own usage chunk: one
        iterator over the socket's chunks (no nested generators), the hot path of every
        pass-through stream."""
        assert self._relay is not None, "this stream has no byte relay"
        relay = self._raw_relay = self._relay()
        return RawBytes(self, self._take(), relay)

    def events(self) -> Events:
        """The stream as common events, decoded by the provider's dialect and passed through
        every stage in the order they were added."""
        return Events(self, self._take())

    def billed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """Record the upstream's usage before any stage sees it: what the upstream billed is
        billed, whatever a stage then holds back or ends."""
        for event in events:
            if isinstance(event, UsageReport):
                self.outcome.usage = event.usage
        return events

    async def staged(self, events: Iterable[StreamEvent], start: int = 0) -> Sequence[StreamEvent]:
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
        if self._raw_relay is not None:
            # The raw view's usage is recorded here, however its reading ended: at the end,
            # on an error, or mid-stream when the reader stopped (a client gone).
            self.outcome.usage = self._raw_relay.usage
        self._response.close()
        try:
            await self._chunks.aclose()
        finally:
            for listener in self._listeners:
                listener(self.outcome)


class RawBytes:
    """``UpstreamStream.raw()``: the socket's chunks through the byte relay, for ``async
    for``. A class rather than an async generator, so that mypyc compiles it."""

    __slots__ = ("_first", "_relay", "_state", "_stream")

    def __init__(self, stream: UpstreamStream, first: bytes | None, relay: ByteRelay) -> None:
        self._stream = stream
        self._first = first
        self._relay = relay
        self._state = _FIRST

    def __aiter__(self) -> RawBytes:
        return self

    async def __anext__(self) -> bytes:
        relay = self._relay
        try:
            if self._state == _FIRST:
                self._state = _SOCKET
                first, self._first = self._first, None
                if first:
                    out = relay.feed(first)
                    if out:
                        return out
            while self._state == _SOCKET:
                try:
                    chunk = await self._stream._chunks.__anext__()
                except StopAsyncIteration:
                    self._state = _TAIL
                    tail = relay.finish()
                    if tail:
                        return tail
                    break
                out = relay.feed(chunk)
                if out:
                    return out
        except TollwayError as exc:
            self._state = _OVER
            self._stream.failed(exc)
            raise
        if self._state == _TAIL:
            # The tail reached the reader, who asked for more: the stream is over.
            self._state = _OVER
            self._stream.outcome.completed = True
        raise StopAsyncIteration


class Events:
    """``UpstreamStream.events()``, for ``async for``: each frame's events through the
    stages before the next frame is read, then the tail, then what each stage held back.
    A class rather than an async generator, so that mypyc compiles it."""

    __slots__ = (
        "_decoder",
        "_framer",
        "_frames",
        "_index",
        "_next_frame",
        "_out",
        "_pending",
        "_stage",
        "_staged",
        "_state",
        "_stream",
    )

    def __init__(self, stream: UpstreamStream, first: bytes | None) -> None:
        self._stream = stream
        self._framer = stream._framer()
        self._decoder = stream._decoder()
        self._staged = bool(stream._stages)
        self._state = _FIRST
        self._pending = first
        self._frames: list[Frame] = []
        self._next_frame = 0
        self._out: Sequence[StreamEvent] = ()
        self._index = 0  # the next of ``_out`` to hand out
        self._stage = 0  # the next stage whose held-back events are released at the end

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            while self._index >= len(self._out):
                self._out = await self._refill()
                self._index = 0
            event = self._out[self._index]
            self._index += 1
            return event
        except TollwayError as exc:
            self._state = _OVER
            self._stream.failed(exc)
            raise

    async def _refill(self) -> Sequence[StreamEvent]:
        """The events of the next step (maybe none); StopAsyncIteration after the last."""
        stream = self._stream
        if self._next_frame < len(self._frames):
            frame = self._frames[self._next_frame]
            self._next_frame += 1
            events = stream.billed(self._decoder.feed(frame))
            return await stream.staged(events) if self._staged else events
        if self._state == _FIRST:
            self._state = _SOCKET
            first, self._pending = self._pending, None
            if first:
                self._feed(first)
            return ()
        if self._state == _SOCKET:
            try:
                chunk = await stream._chunks.__anext__()
            except StopAsyncIteration:
                self._state = _TAIL
                tail = [e for frame in self._framer.finish() for e in self._decoder.feed(frame)]
                tail.extend(self._decoder.finish())
                tail = stream.billed(tail)
                return await stream.staged(tail) if self._staged else tail
            self._feed(chunk)
            return ()
        if self._state == _TAIL:
            stages = stream._stages
            if self._stage < len(stages):
                index = self._stage
                self._stage += 1
                return await stream.staged(await stages[index].on_end(), start=index + 1)
            self._state = _OVER
            stream.outcome.completed = True
        raise StopAsyncIteration

    def _feed(self, chunk: bytes) -> None:
        self._frames = self._framer.feed(chunk)
        self._next_frame = 0


# The reading states of ``RawBytes`` and ``Events``.
_FIRST: Final = 0  # the primed first chunk is next
_SOCKET: Final = 1  # reading the socket's chunks
_TAIL: Final = 2  # the upstream's end was read: what it left is being released
_OVER: Final = 3
