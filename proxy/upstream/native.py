"""Native pass-through: a client speaking a provider's own format, served by that provider.

The client's bytes go upstream with at most the model rewritten, and the reply comes back
untouched; the gateway only reads the usage as the bytes go by. Each provider entry says how
(``NativeReader``): OpenAI's and Anthropic's readers never build the common model (the
zero-copy paths); the others take their decoders from the provider's dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from ..dialects import anthropic, openai
from ..dialects.base import EventDecoder, Outbound, Target
from ..errors import TollwayError
from ..model import StreamEvent, Usage, UsageReport
from ..request import ParsedRequest
from ..usage import usage_from_body
from .framing import Framer, SSEFramer
from .sse import ByteRelay, SSERelay

_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
FramerFactory = Callable[[], Framer]


class NativeReader(Protocol):
    """How one native exchange is sent and read."""

    def body(self) -> bytes: ...

    def relay(self) -> ByteRelay: ...

    def decoder(self) -> EventDecoder: ...

    def usage(self, body: bytes) -> Usage | None: ...


class NativeFactory(Protocol):
    def __call__(
        self, request: ParsedRequest, target: Target, dialect: Outbound, framer: FramerFactory
    ) -> NativeReader: ...


def with_model(body: bytes, model: str) -> bytes:
    """``body`` with its top-level ``model`` replaced (every other value kept as bytes)."""
    fields = _raw_fields.decode(body)
    fields["model"] = msgspec.Raw(msgspec.json.encode(model))
    return msgspec.json.encode(fields)


class OpenAINative:
    """OpenAI chat to an OpenAI-compatible upstream: the zero-copy path."""

    __slots__ = ("_model", "_request")

    def __init__(
        self, request: ParsedRequest, target: Target, dialect: Outbound, framer: FramerFactory
    ) -> None:
        self._request = request
        self._model = target.model

    def body(self) -> bytes:
        return openai.forward_body(self._request, self._model)

    def relay(self) -> ByteRelay:
        return SSERelay(strip_usage_chunk=not self._request.wants_usage_chunk)

    def decoder(self) -> EventDecoder:
        return openai.ChunkDecoder()

    def usage(self, body: bytes) -> Usage | None:
        return usage_from_body(body)


class AnthropicNative:
    """``/v1/messages`` to an ``anthropic/`` deployment: only ``model`` is rewritten."""

    __slots__ = ("_model", "_request")

    def __init__(
        self, request: ParsedRequest, target: Target, dialect: Outbound, framer: FramerFactory
    ) -> None:
        self._request = request
        self._model = target.model

    def body(self) -> bytes:
        return anthropic.with_model(self._request.body, self._model)

    def relay(self) -> ByteRelay:
        return EventSniffer(SSEFramer(), anthropic.MessagesDecoder(self._model, False))

    def decoder(self) -> EventDecoder:
        return anthropic.MessagesDecoder(self._model, False)

    def usage(self, body: bytes) -> Usage | None:
        return anthropic.native_body_usage(body)


class DecodedNative:
    """Any other provider's own format: the bytes pass through, and the provider's dialect
    reads the reply's usage (its decoders need the request in the common model)."""

    __slots__ = ("_exchange", "_framer", "_request", "_target")

    def __init__(
        self,
        request: ParsedRequest,
        target: Target,
        dialect: Outbound,
        framer: FramerFactory,
    ) -> None:
        self._request = request
        self._target = target
        self._framer = framer
        self._exchange = dialect.chat(request.chat(), target)

    def body(self) -> bytes:
        return with_model(self._request.body, self._target.model)

    def relay(self) -> ByteRelay:
        return EventSniffer(self._framer(), self._exchange.stream_decoder())

    def decoder(self) -> EventDecoder:
        return self._exchange.stream_decoder()

    def usage(self, body: bytes) -> Usage | None:
        try:
            return self._exchange.decode_reply(body).usage
        except TollwayError:
            return None


class ModelInURLNative(DecodedNative):
    """For formats that name the model in the URL (Gemini, Bedrock): the body is as sent."""

    __slots__ = ()

    def body(self) -> bytes:
        return self._request.body


class EventSniffer:
    """Bytes pass through untouched; a dialect decoder reads them on the side for usage.

    A decoding error does not touch the bytes (the client gets what the upstream sent); the
    sniffer just stops reading.
    """

    __slots__ = ("_decoder", "_failed", "_framer", "usage")

    def __init__(self, framer: Framer, decoder: EventDecoder) -> None:
        self._framer = framer
        self._decoder = decoder
        self._failed = False
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        if not self._failed:
            self._read(lambda: [e for f in self._framer.feed(chunk) for e in self._decoder.feed(f)])
        return chunk

    def finish(self) -> bytes:
        if not self._failed:
            self._read(
                lambda: (
                    [e for f in self._framer.finish() for e in self._decoder.feed(f)]
                    + self._decoder.finish()
                )
            )
        return b""

    def _read(self, events: Callable[[], list[StreamEvent]]) -> None:
        try:
            for event in events():
                if isinstance(event, UsageReport):
                    self.usage = event.usage
        except TollwayError:
            self._failed = True
