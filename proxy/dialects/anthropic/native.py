"""The ``/v1/messages`` pass-through to an ``anthropic/`` deployment: the client's bytes go
upstream with only ``model`` rewritten, and the reply comes back untouched, its usage read
from the ``message`` body or from the ``message_start``/``message_delta`` stream events.
Usage is in OpenAI's meaning: prompt = input + cache read + cache creation, cached = cache
read.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...model import Usage, usage
from ..base import Frame


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(msgspec.Struct):
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    message: _Message | None = None
    usage: _Usage | None = None


_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_message_decoder = msgspec.json.Decoder(_Message)
_event_decoder = msgspec.json.Decoder(_Event)


def with_model(native_body: bytes, model: str) -> bytes:
    """The client's Messages body with only ``model`` replaced; every other value keeps the
    client's own bytes."""
    fields = _raw_decoder.decode(native_body)
    fields["model"] = msgspec.Raw(msgspec.json.encode(model))
    return msgspec.json.encode(fields)


def native_body_usage(raw: bytes) -> Usage | None:
    """The usage of an Anthropic ``message`` body; None when it has none or is not one."""
    try:
        reported = _message_decoder.decode(raw).usage
    except msgspec.DecodeError:
        return None
    if reported is None:
        return None
    counts = NativeUsage()
    counts.add(reported, final=True)
    return counts.usage


class NativeUsage:
    """Usage read from Anthropic stream events; ``usage`` is None until ``message_delta``
    (which carries the final output count) was seen."""

    __slots__ = ("cache_creation", "cache_read", "complete", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_creation = 0
        self.complete = False

    def feed(self, frame: Frame) -> None:
        """Read the usage of one frame of a relayed stream (its bytes are not changed)."""
        # Most events carry no usage: skip them without decoding.
        if b'"usage"' not in frame.data:
            return
        try:
            decoded = _event_decoder.decode(frame.data)
        except msgspec.DecodeError:
            return
        if decoded.type == "message_start" and decoded.message and decoded.message.usage:
            self.add(decoded.message.usage, final=False)
        elif decoded.type == "message_delta" and decoded.usage is not None:
            self.add(decoded.usage, final=True)

    def absorb(self, data: dict[str, Any]) -> None:
        """Read the usage of one already decoded event."""
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            raw = message.get("usage") if isinstance(message, dict) else None
        elif kind == "message_delta":
            raw = data.get("usage")
        else:
            return
        if isinstance(raw, dict):
            try:
                reported = msgspec.convert(raw, _Usage)
            except msgspec.ValidationError:
                return
            self.add(reported, final=kind == "message_delta")

    def add(self, reported: _Usage, *, final: bool) -> None:
        # message_delta's counts are cumulative; its input counts, when present, win.
        if reported.input_tokens:
            self.input = reported.input_tokens
        if reported.cache_read_input_tokens:
            self.cache_read = reported.cache_read_input_tokens
        if reported.cache_creation_input_tokens:
            self.cache_creation = reported.cache_creation_input_tokens
        if reported.output_tokens is not None:
            self.output = reported.output_tokens
        self.complete = self.complete or final

    @property
    def usage(self) -> Usage | None:
        if not self.complete:
            return None
        prompt = self.input + self.cache_read + self.cache_creation
        return usage(prompt, self.output, cached=self.cache_read)
