"""Embeddings through ``batchEmbedContents``: text inputs only, no token count reported."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import Embedding, EmbeddingReply, EmbeddingRequest
from ..common import dumps, loads_object
from .request import PROVIDER, model_path


def text_inputs(request: EmbeddingRequest) -> list[str]:
    """The request's inputs, which must all be text (no token arrays)."""
    inputs = request.texts()
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(f"{PROVIDER} embeddings take text inputs", param="input")
    return inputs


def estimated_tokens(texts: list[str]) -> int:
    """The token count the client is shown, Gemini reporting none: about four bytes a
    token, at least one a text. The ledger bills the call as estimated (no usage)."""
    return sum(max(1, (len(text.encode()) + 3) // 4) for text in texts)


class GeminiEmbeddingExchange:
    """One ``batchEmbedContents`` request and the decoder of its reply."""

    __slots__ = ("_model", "body", "texts")

    def __init__(self, request: EmbeddingRequest, model: str) -> None:
        self._model = model
        self.texts = text_inputs(request)
        path = model_path(model)
        self.body = dumps(
            {"requests": [{"model": path, "content": {"parts": [{"text": t}]}} for t in self.texts]}
        )

    def decode_reply(self, body: bytes) -> EmbeddingReply:
        decoded = loads_object(body) or {}
        entries: Any = decoded.get("embeddings", [])
        vectors = [e.get("values", []) if isinstance(e, dict) else [] for e in entries or ()]
        return EmbeddingReply(
            model=self._model,
            data=[Embedding(embedding=vector, index=i) for i, vector in enumerate(vectors)],
            usage=None,
        )
