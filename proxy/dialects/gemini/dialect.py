"""The Gemini dialect's outbound face: chat, embeddings and error replies."""

from __future__ import annotations

from ...model import ChatReply, ChatRequest, EmbeddingRequest
from ..base import Target
from ..common import dumps
from .embeddings import GeminiEmbeddingExchange
from .fault import GeminiFault, fault
from .reply import decode_reply
from .request import build_request
from .stream import GeminiStreamDecoder


class GeminiExchange:
    """One encoded ``generateContent`` request; the same body serves
    ``streamGenerateContent?alt=sse`` (the engine picks the method from ``request.stream``)."""

    __slots__ = ("_model", "body")

    def __init__(self, body: bytes, model: str) -> None:
        self.body = body
        self._model = model

    def decode_reply(self, body: bytes) -> ChatReply:
        return decode_reply(body, self._model)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(self._model)


class GeminiDialect:
    """Google AI Studio's ``generateContent`` wire format (outbound only)."""

    name = "gemini"

    def chat(self, request: ChatRequest, target: Target) -> GeminiExchange:
        """Encode ``request``; raises ``InvalidRequest`` for what Gemini cannot carry."""
        return GeminiExchange(dumps(build_request(request)), target.model)

    def embeddings(self, request: EmbeddingRequest, target: Target) -> GeminiEmbeddingExchange:
        """Encode a ``batchEmbedContents`` request; inputs must be text."""
        return GeminiEmbeddingExchange(request, target.model)

    def fault(self, status: int, body: bytes) -> GeminiFault:
        """An error reply as a ``Fault`` (see ``fault.fault``)."""
        return fault(status, body)
