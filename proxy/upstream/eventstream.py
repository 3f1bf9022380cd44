"""The AWS binary event-stream framing (``application/vnd.amazon.eventstream``), decoded.

One message on the wire::

    total length   uint32 BE  (the whole message, these 4 bytes and the final CRC included)
    headers length uint32 BE
    prelude CRC    uint32 BE  (CRC32 of the 8 bytes above)
    headers        name length uint8, name, value type uint8, value (see ``_read_value``)
    payload        total - headers - 16 bytes
    message CRC    uint32 BE  (CRC32 of everything before it)

``EventStreamDecoder.feed`` takes bytes split anywhere (the network decides) and returns
the messages completed so far; a bad CRC or a length out of bounds raises
``EventStreamError``, since nothing after a corrupt frame can be trusted.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

_PRELUDE = struct.Struct(">III")
_PRELUDE_LEN = 12
_CRC_LEN = 4
# Frames AWS sends are far smaller; the bound only stops a corrupt length from making us
# buffer without end.
MAX_MESSAGE_BYTES = 24 * 1024 * 1024
MAX_HEADERS_BYTES = 128 * 1024

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamError(ValueError):
    """The byte stream is not a valid event stream (bad CRC, length or header)."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a message not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EventMessage]:
        buffer = self._buffer
        buffer += data
        messages: list[EventMessage] = []
        start = 0
        while len(buffer) - start >= _PRELUDE_LEN:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buffer, start)
            if zlib.crc32(buffer[start : start + 8]) != prelude_crc:
                raise EventStreamError("event-stream prelude CRC mismatch")
            if total < _PRELUDE_LEN + _CRC_LEN or total > MAX_MESSAGE_BYTES:
                raise EventStreamError(f"event-stream message length {total} is out of bounds")
            if headers_len > MAX_HEADERS_BYTES or headers_len > total - _PRELUDE_LEN - _CRC_LEN:
                raise EventStreamError(f"event-stream headers length {headers_len} is invalid")
            if len(buffer) - start < total:
                break
            end = start + total
            (message_crc,) = struct.unpack_from(">I", buffer, end - _CRC_LEN)
            if zlib.crc32(buffer[start : end - _CRC_LEN]) != message_crc:
                raise EventStreamError("event-stream message CRC mismatch")
            headers_start = start + _PRELUDE_LEN
            payload_start = headers_start + headers_len
            headers = _parse_headers(bytes(buffer[headers_start:payload_start]))
            messages.append(EventMessage(headers, bytes(buffer[payload_start : end - _CRC_LEN])))
            start = end
        if start:
            del buffer[:start]
        return messages


def _parse_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    try:
        while pos < len(data):
            name_len = data[pos]
            pos += 1
            name = data[pos : pos + name_len].decode()
            pos += name_len
            kind = data[pos]
            pos += 1
            value, pos = _read_value(kind, data, pos)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError("event-stream headers are malformed") from exc
    if pos != len(data):
        raise EventStreamError("event-stream headers overrun their length")
    return headers


def _read_value(kind: int, data: bytes, pos: int) -> tuple[HeaderValue, int]:
    if kind == 0:
        return True, pos
    if kind == 1:
        return False, pos
    if kind == 2:
        return struct.unpack_from(">b", data, pos)[0], pos + 1
    if kind == 3:
        return struct.unpack_from(">h", data, pos)[0], pos + 2
    if kind == 4:
        return struct.unpack_from(">i", data, pos)[0], pos + 4
    if kind in (5, 8):  # int64, and a timestamp in milliseconds since the epoch
        return struct.unpack_from(">q", data, pos)[0], pos + 8
    if kind in (6, 7):
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        raw = data[pos : pos + length]
        if len(raw) != length:
            raise EventStreamError("event-stream header value is truncated")
        return (raw if kind == 6 else raw.decode()), pos + length
    if kind == 9:
        raw = data[pos : pos + 16]
        if len(raw) != 16:
            raise EventStreamError("event-stream header value is truncated")
        return uuid.UUID(bytes=raw), pos + 16
    raise EventStreamError(f"event-stream header type {kind} is unknown")


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message with string headers (what AWS sends; used by tests and fakes)."""
    encoded = bytearray()
    for name, value in headers.items():
        raw_name = name.encode()
        raw_value = value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", 7, len(raw_value)) + raw_value
    total = _PRELUDE_LEN + len(encoded) + len(payload) + _CRC_LEN
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + bytes(encoded) + payload
    return body + struct.pack(">I", zlib.crc32(body))
