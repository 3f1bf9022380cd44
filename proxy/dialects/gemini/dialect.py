"""The Gemini dialect's outbound face: chat, embeddings and error replies."""

from __future__ import annotations

from functools import partial

from ...model import ChatRequest, EmbeddingRequest
from ..base import ChatExchange, EmbeddingsExchange, Fault, Target
from ..common import dumps
from .embeddings import decode_embeddings, embeddings_request
from .fault import fault
from .reply import decode_reply
from .request import build_request
from .stream import GeminiStreamDecoder


class GeminiDialect:
    """Google AI Studio's ``generateContent`` wire format (outbound only)."""

    name = "gemini"

    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        """Encode ``request``; raises ``InvalidRequest`` for what Gemini cannot carry. The
        same body serves ``streamGenerateContent?alt=sse`` (the engine picks the method from
        ``request.stream``)."""
        return ChatExchange(
            dumps(build_request(request)),
            partial(decode_reply, model=target.model),
            partial(GeminiStreamDecoder, target.model),
        )

    def embeddings(self, request: EmbeddingRequest, target: Target) -> EmbeddingsExchange:
        """Encode a ``batchEmbedContents`` request; inputs must be text."""
        body = embeddings_request(request, target.model)
        return EmbeddingsExchange(body, partial(decode_embeddings, model=target.model))

    def fault(self, status: int, body: bytes) -> Fault:
        """An error reply as a ``Fault`` (see ``fault.fault``)."""
        return fault(status, body)
