"""The Gemini dialect's inbound face: a client speaking Google AI Studio's
``generateContent`` / ``streamGenerateContent?alt=sse`` to the gateway."""

from __future__ import annotations

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest
from .inbound_reply import GeminiStreamEncoder, encode_error, encode_reply
from .inbound_request import decode_request


class GeminiInbound:
    """Both directions of a Gemini client's exchange; stateless.

    Gemini names the model and the streaming method in the URL, not the body: the pipeline
    passes ``model`` (``gemini-2.0-flash`` or ``models/gemini-2.0-flash``) and ``stream``
    (true for ``:streamGenerateContent``) to ``decode_request``.
    """

    name = "gemini"

    def decode_request(self, body: bytes, model: str = "", stream: bool = False) -> ChatRequest:
        """Validate and decode; raises ``InvalidRequest`` naming the bad field (an empty
        ``model`` is refused as ``model``)."""
        return decode_request(body, model, stream)

    def encode_reply(self, reply: ChatReply) -> bytes:
        return encode_reply(reply)

    def stream_encoder(self, request: ChatRequest) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(request.model)

    def encode_error(self, exc: TollwayError) -> bytes:
        return encode_error(exc)


INBOUND = GeminiInbound()
