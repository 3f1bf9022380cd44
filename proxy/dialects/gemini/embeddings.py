"""Embeddings through ``batchEmbedContents``: text inputs only, no token count reported."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import Embedding, EmbeddingReply, EmbeddingRequest
from ..common import dumps, loads_object
from .request import PROVIDER, model_path


def embeddings_request(request: EmbeddingRequest, model: str) -> bytes:
    """The ``batchEmbedContents`` body; the inputs must all be text (no token arrays)."""
    texts = request.texts()
    if not all(isinstance(item, str) for item in texts):
        raise InvalidRequest(f"{PROVIDER} embeddings take text inputs", param="input")
    path = model_path(model)
    return dumps(
        {"requests": [{"model": path, "content": {"parts": [{"text": t}]}} for t in texts]}
    )


def decode_embeddings(body: bytes, model: str) -> EmbeddingReply:
    decoded = loads_object(body) or {}
    entries: Any = decoded.get("embeddings", [])
    vectors = [e.get("values", []) if isinstance(e, dict) else [] for e in entries or ()]
    return EmbeddingReply(
        model=model,
        data=[Embedding(embedding=vector, index=i) for i, vector in enumerate(vectors)],
        usage=None,
    )
