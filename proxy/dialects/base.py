"""What a dialect is: one wire format, both directions, as pure functions over ``proxy.model``.

A dialect never touches the network. Its two faces:

- ``Outbound`` (the gateway talks to a provider in this format): ``chat(request, target)``
  encodes a ``ChatRequest`` once into an ``Exchange`` that holds the request bytes and knows
  how to decode the reply (a whole body → ``ChatReply``; stream frames → ``StreamEvent``\\ s),
  plus ``fault`` (an error reply → ``Fault``) and, where the format has them, embeddings.
- ``Inbound`` (a client talks to the gateway in this format): ``decode_request`` (bytes →
  ``ChatRequest``), ``encode_reply`` (``ChatReply`` → bytes), ``stream_encoder`` (events →
  bytes) and ``encode_error`` (the contract's error in this format's shape).

Frames are what the provider engine's framing layer cut out of the byte stream: an SSE event
(``event`` name, ``data`` payload) or an AWS event-stream message (``event`` = its
``:event-type`` or ``:exception-type``, ``kind`` = its ``:message-type``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import msgspec

from ..errors import TollwayError
from ..model import ChatReply, ChatRequest, EmbeddingReply, EmbeddingRequest, StreamEvent


class Frame(msgspec.Struct, frozen=True):
    data: bytes
    event: str | None = None
    kind: str = "event"  # "event" | "exception" | "error" (AWS event stream message types)


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What a dialect may know of the deployment it encodes for (no credentials)."""

    model: str  # the provider's model name
    max_output_tokens: int | None = None  # model_info's, for formats that require a limit
    provider: str = ""  # the provider prefix, for messages ("gemini/ models ...")


class Fault(msgspec.Struct, kw_only=True):
    """An upstream error reply as its format describes it; ``upstream.errors`` maps it."""

    status: int  # the HTTP status the upstream sent
    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None
    # The status the gateway answers with when the format asks for another one (Anthropic's
    # 529 overloaded → a retryable 503); None keeps the contract's default mapping.
    answer_status: int | None = None
    # When to come back, for formats that say so in the body (Gemini's ``retryDelay``); the
    # engine falls back to the ``retry-after`` header.
    retry_after: str | None = None


class EventDecoder(Protocol):
    """Stateful: provider frames in, common stream events out."""

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Events for one frame; raises a ``TollwayError`` for an in-band error frame."""
        ...

    def finish(self) -> list[StreamEvent]:
        """Called once when the upstream's bytes end; raises when the stream was cut short
        (e.g. ``UpstreamUnreachable`` when Anthropic's ``message_stop`` never came)."""
        ...


class Exchange(Protocol):
    """One encoded chat request and the decoders for its reply."""

    body: bytes

    def decode_reply(self, body: bytes) -> ChatReply: ...

    def stream_decoder(self) -> EventDecoder: ...


class EmbeddingExchange(Protocol):
    body: bytes

    def decode_reply(self, body: bytes) -> EmbeddingReply: ...


class ChatExchange:
    """An ``Exchange`` of its parts: the request bytes, the function that decodes a whole
    reply and the one that makes a stream decoder (both bound to the deployment's model)."""

    __slots__ = ("_decode_reply", "_stream_decoder", "body")

    def __init__(
        self,
        body: bytes,
        decode_reply: Callable[[bytes], ChatReply],
        stream_decoder: Callable[[], EventDecoder],
    ) -> None:
        self.body = body
        self._decode_reply = decode_reply
        self._stream_decoder = stream_decoder

    def decode_reply(self, body: bytes) -> ChatReply:
        return self._decode_reply(body)

    def stream_decoder(self) -> EventDecoder:
        return self._stream_decoder()


class EmbeddingsExchange:
    """An ``EmbeddingExchange`` of its parts: the request bytes and the reply's decoder."""

    __slots__ = ("_decode_reply", "body")

    def __init__(self, body: bytes, decode_reply: Callable[[bytes], EmbeddingReply]) -> None:
        self.body = body
        self._decode_reply = decode_reply

    def decode_reply(self, body: bytes) -> EmbeddingReply:
        return self._decode_reply(body)


class Outbound(Protocol):
    name: str

    def chat(self, request: ChatRequest, target: Target) -> Exchange:
        """Encode ``request``; raises ``InvalidRequest`` for what the format cannot carry."""
        ...

    def fault(self, status: int, body: bytes) -> Fault: ...


@runtime_checkable
class EmbeddingOutbound(Protocol):
    def embeddings(self, request: EmbeddingRequest, target: Target) -> EmbeddingExchange: ...


class EventEncoder(Protocol):
    """Stateful: common stream events in, the client's stream bytes out."""

    def encode(self, event: StreamEvent) -> bytes: ...

    def finish(self) -> bytes:
        """The stream's trailer (``data: [DONE]``, ``message_stop`` …)."""
        ...

    def error(self, exc: TollwayError) -> bytes:
        """The in-band event that ends a stream which failed after its headers were sent."""
        ...


class Inbound(Protocol):
    name: str

    def decode_request(self, body: bytes) -> ChatRequest:
        """Validate and decode; raises ``InvalidRequest`` naming the bad field."""
        ...

    def encode_reply(self, reply: ChatReply) -> bytes: ...

    def stream_encoder(self, request: ChatRequest) -> EventEncoder: ...

    def encode_error(self, exc: TollwayError) -> bytes: ...
