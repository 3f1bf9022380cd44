"""Stream framing: upstream bytes cut into ``Frame``\\ s, whatever chunk boundaries they had.

``SSEFramer`` splits Server-Sent Events (any of the three line-ending styles) into their
``event`` name and joined ``data``; ``EventStreamFramer`` decodes AWS's binary event stream
(CRC-checked by ``eventstream``) into frames carrying ``:event-type`` / ``:message-type``.
"""

from __future__ import annotations

from typing import Protocol

from ..dialects.base import Frame
from ..errors import UpstreamError
from .eventstream import EventStreamDecoder, EventStreamError
from .sse import EVENT_BOUNDARY


class Framer(Protocol):
    def feed(self, chunk: bytes) -> list[Frame]: ...

    def finish(self) -> list[Frame]: ...


class SSEFramer:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        data = self._buffer + chunk if self._buffer else chunk
        frames = []
        last_end = 0
        for match in EVENT_BOUNDARY.finditer(data):
            frame = sse_frame(data[last_end : match.start()])
            if frame is not None:
                frames.append(frame)
            last_end = match.end()
        self._buffer = data[last_end:]
        return frames

    def finish(self) -> list[Frame]:
        rest, self._buffer = self._buffer, b""
        frame = sse_frame(rest) if rest.strip() else None
        return [frame] if frame is not None else []


def sse_frame(raw: bytes) -> Frame | None:
    """One SSE event's ``event:`` name and joined ``data:`` lines; None for comments."""
    name: str | None = None
    lines = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not lines and name is None:
        return None
    return Frame(data=b"\n".join(lines), event=name)


class EventStreamFramer:
    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = EventStreamDecoder()

    def feed(self, chunk: bytes) -> list[Frame]:
        try:
            messages = self._decoder.feed(chunk)
        except EventStreamError as exc:
            raise UpstreamError(f"the upstream sent a corrupt event stream: {exc}") from exc
        frames = []
        for message in messages:
            kind = message.header(":message-type") or "event"
            if kind == "exception":
                name = message.header(":exception-type")
                data = message.payload
            elif kind == "error":
                name = message.header(":error-code")
                data = (message.header(":error-message") or "").encode()
            else:
                name = message.header(":event-type")
                data = message.payload
            frames.append(Frame(data=data, event=name, kind=kind))
        return frames

    def finish(self) -> list[Frame]:
        if self._decoder.pending:
            raise UpstreamError("the upstream's event stream ended inside a message")
        return []
