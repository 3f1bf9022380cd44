"""OpenAI embeddings request ↔ Cohere v2 ``/v2/embed``."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import Embedding, EmbeddingReply, EmbeddingRequest, usage
from ..common import loads_object
from .request import PROVIDER


def build_embed_request(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The Cohere v2 embed body; inputs must be text (Cohere's token arrays are not
    OpenAI's)."""
    texts = request.texts()
    if not all(isinstance(item, str) for item in texts):
        raise InvalidRequest(f"{PROVIDER} embeddings take text inputs", param="input")
    # Gateway clients embed what they will later search: Cohere's document side.
    return {
        "model": model,
        "texts": texts,
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def translate_embeddings(raw: bytes, model: str) -> EmbeddingReply:
    """Cohere's embed reply as an ``EmbeddingReply``; usage only when Cohere billed units."""
    decoded = loads_object(raw) or {}
    embeddings = decoded.get("embeddings") or {}
    vectors = embeddings.get("float", []) if isinstance(embeddings, dict) else embeddings
    meta = decoded.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
    return EmbeddingReply(
        model=model,
        data=[Embedding(embedding=vector, index=i) for i, vector in enumerate(vectors)],
        usage=usage(int(tokens), 0) if isinstance(tokens, int | float) else None,
    )
