"""SSE relay: split upstream bytes into events, sniff usage, pass the bytes on untouched.

The relay never re-encodes an event. It holds back only an incomplete trailing event (which
the client could not use yet anyway) and, when the gateway itself asked the upstream for
``stream_options.include_usage``, drops the usage-only chunk the client did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

import msgspec

from ..usage import Usage, decode_chunk_usage

# Where one SSE event ends: a blank line, in any of the three line-ending styles.
EVENT_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
DONE = b"[DONE]"


class ByteRelay(Protocol):
    """Bytes in, the bytes to send on out; records usage as it goes by."""

    @property
    def usage(self) -> Usage | None: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` payload of one SSE event (without its blank-line terminator)."""
    if event.startswith(b"data:") and b"\n" not in event and b"\r" not in event:
        payload = event[5:]
        return payload[1:] if payload.startswith(b" ") else payload
    lines = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            payload = line[5:]
            lines.append(payload[1:] if payload.startswith(b" ") else payload)
    return b"\n".join(lines) if lines else None


class SSERelay:
    """Feed upstream chunks in; get the bytes to send on, and the usage seen so far."""

    __slots__ = ("_buffer", "done", "strip_usage_chunk", "usage")

    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self._buffer = b""
        self.strip_usage_chunk = strip_usage_chunk
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if (
            not self._buffer
            and chunk.endswith(b"\n\n")
            and chunk.find(b"\n\n") == len(chunk) - 2
            and b"\r" not in chunk
        ):
            # The usual chunk: exactly one whole event, "\n\n" its only boundary (the
            # regular expression below costs several times more than these two scans).
            return b"" if self._inspect(chunk[:-2]) else chunk
        data = self._buffer + chunk if self._buffer else chunk
        parts: list[bytes] | None = None
        emit_from = 0
        last_end = 0
        for start, end in _boundaries(data):
            if self._inspect(data[last_end:start]):
                if parts is None:
                    parts = []
                parts.append(data[emit_from:last_end])
                emit_from = end
            last_end = end
        self._buffer = data[last_end:]
        if parts is None:
            return data if last_end == len(data) else data[:last_end]
        parts.append(data[emit_from:last_end])
        return b"".join(parts)

    def finish(self) -> bytes:
        """Whatever trailing bytes the upstream sent without a final blank line."""
        rest, self._buffer = self._buffer, b""
        if rest.strip() and self._inspect(rest.strip()):
            return b""
        return rest

    def _inspect(self, event: bytes) -> bool:
        """Record usage and ``[DONE]``; True when this event is to be dropped."""
        if b'"usage"' not in event:
            if DONE in event and event_data(event) == DONE:
                self.done = True
            return False
        payload = event_data(event)
        if payload is None:
            return False
        try:
            usage, choices = decode_chunk_usage(payload)
        except msgspec.DecodeError:
            return False
        if usage is None:
            return False
        self.usage = usage
        return self.strip_usage_chunk and choices == 0


def _boundaries(data: bytes) -> Iterator[tuple[int, int]]:
    """Where each event of ``data`` ends: (start, end) of its blank line, in order."""
    if b"\r" in data:
        for match in EVENT_BOUNDARY.finditer(data):
            yield match.start(), match.end()
        return
    # Only "\n\n" can match without a CR: found by bytes.find, several times faster.
    start = data.find(b"\n\n")
    while start >= 0:
        yield start, start + 2
        start = data.find(b"\n\n", start + 2)


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
