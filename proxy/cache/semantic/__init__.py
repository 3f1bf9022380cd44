"""The semantic layer of the response cache: embed the last user turn, find a cached prompt
of the same context that means the same and asks for the same specifics.

``embedder`` (text -> unit vectors) -> ``index`` (nearest prompt by cosine, per context)
-> ``agreement`` (numbers, ids, negations, entities ... must match).
"""

from proxy.cache.semantic.agreement import Signature, agree, signature
from proxy.cache.semantic.embedder import (
    Embedder,
    GatewayEmbedder,
    LocalEmbedder,
    Vectors,
    normalise,
)
from proxy.cache.semantic.index import DEFAULT_THRESHOLD, SemanticIndex

__all__ = [
    "DEFAULT_THRESHOLD",
    "Embedder",
    "GatewayEmbedder",
    "LocalEmbedder",
    "SemanticIndex",
    "Signature",
    "Vectors",
    "agree",
    "normalise",
    "signature",
]
