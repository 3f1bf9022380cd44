"""The stream owner: one object owns an upstream streamed response from first byte to close.

``UpstreamStream`` holds the response, primes its first chunk (so a failure before any byte
reached the client can still be retried), and hands it out once, in one of two views:

- ``raw()``: the upstream's bytes as they arrive, through a byte relay that only sniffs
  usage (and drops the usage-only chunk the gateway itself asked for). Used when the client
  speaks the upstream's format and no stage asked to see events: zero re-encoding.
- ``events()``: the stream cut into frames and decoded by the provider's dialect into common
  ``StreamEvent``\\ s, for translation and for stages that observe, hold back or end a stream.

Either way ``usage`` is the final usage once the stream is over, and ``aclose()`` is the one
close path — on success, error, client disconnect and cancellation alike. It closes the
socket (which tells the upstream to stop generating) and tells the ``on_close`` listeners how
the stream ended (the router's health bookkeeping listens there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from ..dialects.base import EventDecoder
from ..errors import TollwayError
from ..model import StreamEvent, Usage, UsageReport
from .errors import scrubbed
from .framing import Framer
from .transport import UpstreamResponse


class ByteRelay(Protocol):
    """Bytes in, the bytes to send on out; records usage as it goes by."""

    @property
    def usage(self) -> Usage | None: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class StreamOutcome:
    __slots__ = ("completed", "error", "usage")

    def __init__(self) -> None:
        self.completed = False
        self.error: TollwayError | None = None
        self.usage: Usage | None = None


CloseListener = Callable[[StreamOutcome], None]


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
        self._chunks = response.iter_chunks()
        self.outcome = StreamOutcome()

    @property
    def usage(self) -> Usage | None:
        return self.outcome.usage

    @property
    def relays_raw(self) -> bool:
        """True when ``raw()`` is available (a byte relay was given)."""
        return self._relay is not None

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

    async def _upstream(self) -> AsyncIterator[bytes]:
        if self._taken:
            raise RuntimeError("an upstream stream is read once")
        self._taken = True
        try:
            if self._first:
                yield self._first
            self._first = None
            async for chunk in self._chunks:
                yield chunk
        except TollwayError as exc:
            self.outcome.error = scrubbed(exc, self._secrets)
            raise

    async def raw(self) -> AsyncIterator[bytes]:
        """The upstream's bytes, untouched but for the gateway's own usage chunk."""
        assert self._relay is not None, "this stream has no byte relay"
        relay = self._relay()
        try:
            async for chunk in self._upstream():
                out = relay.feed(chunk)
                if out:
                    yield out
            tail = relay.finish()
            if tail:
                yield tail
            self.outcome.completed = True
        finally:
            self.outcome.usage = relay.usage

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The stream as common events, decoded by the provider's dialect."""
        framer = self._framer()
        decoder = self._decoder()
        outcome = self.outcome
        try:
            async for chunk in self._upstream():
                for frame in framer.feed(chunk):
                    for event in decoder.feed(frame):
                        if isinstance(event, UsageReport):
                            outcome.usage = event.usage
                        yield event
            tail = [e for frame in framer.finish() for e in decoder.feed(frame)]
            tail.extend(decoder.finish())
            for event in tail:
                if isinstance(event, UsageReport):
                    outcome.usage = event.usage
                yield event
            outcome.completed = True
        except TollwayError as exc:
            outcome.error = scrubbed(exc, self._secrets)
            raise

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
