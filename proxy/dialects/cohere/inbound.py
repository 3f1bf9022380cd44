"""The Cohere dialect's inbound face: a client speaking Cohere's v2 chat
(``POST /v2/chat``) to the gateway."""

from __future__ import annotations

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest
from .inbound_reply import CohereStreamEncoder, encode_error, encode_reply
from .inbound_request import decode_request


class CohereInbound:
    """Both directions of a Cohere v2 chat client's exchange; stateless."""

    name = "cohere"

    def decode_request(self, body: bytes) -> ChatRequest:
        """Validate and decode; raises ``InvalidRequest`` naming the bad field."""
        return decode_request(body)

    def encode_reply(self, reply: ChatReply) -> bytes:
        return encode_reply(reply)

    def stream_encoder(self, request: ChatRequest) -> CohereStreamEncoder:
        return CohereStreamEncoder()

    def encode_error(self, exc: TollwayError) -> bytes:
        return encode_error(exc)


INBOUND = CohereInbound()
