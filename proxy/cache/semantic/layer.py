"""The semantic cache's hooks into the cache stage: find a stored answer to a prompt that
means the same, and remember a new one.

Candidates are entries of the same scope, namespace and conversation context (everything but
the last user turn: earlier turns, system prompt, tools, parameters — ``key.last_user_turn``);
among them the closest last user turn by cosine similarity wins if it reaches the threshold
*and* the two prompts agree on their specifics (``agreement.agree``). Vectors live in memory
(``local-semantic``) or in Redis, shared by replicas (``redis-semantic``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...clock import Clock
from ...pipeline.call import Call
from ...request import ParsedRequest
from ..config import CacheSettings
from ..key import last_user_turn
from ..redis_store import RedisStore
from ..redis_vectors import RedisVectors
from ..stage import Semantic, SemanticLayer
from ..store import CacheStore
from .agreement import agree
from .embedder import Embedder, LocalEmbedder
from .index import DEFAULT_THRESHOLD, SemanticIndex


class Candidates:
    """Where vectors are kept: the in-memory index, or Redis (``RedisVectors``)."""

    async def lookup(
        self, vector: np.ndarray, text: str, context: str, threshold: float
    ) -> tuple[str, float] | None:
        raise NotImplementedError

    async def add(
        self, vector: np.ndarray, context: str, key: str, text: str, ttl: float | None
    ) -> None:
        raise NotImplementedError


class InMemory(Candidates):
    def __init__(self, index: SemanticIndex) -> None:
        self.index = index

    async def lookup(
        self, vector: np.ndarray, text: str, context: str, threshold: float
    ) -> tuple[str, float] | None:
        return self.index.lookup(vector, text, context, threshold)

    async def add(
        self, vector: np.ndarray, context: str, key: str, text: str, ttl: float | None
    ) -> None:
        self.index.add(vector, context, key, text, ttl=ttl)


class InRedis(Candidates):
    def __init__(self, vectors: RedisVectors) -> None:
        self.vectors = vectors

    async def lookup(
        self, vector: np.ndarray, text: str, context: str, threshold: float
    ) -> tuple[str, float] | None:
        best: tuple[str, float] | None = None
        for key, stored_text, stored in await self.vectors.candidates(context):
            similarity = float(np.dot(stored, vector))
            better = best is None or similarity > best[1]
            if similarity >= threshold and better and agree(text, stored_text):
                best = (key, similarity)
        return best

    async def add(
        self, vector: np.ndarray, context: str, key: str, text: str, ttl: float | None
    ) -> None:
        await self.vectors.add(key, context, text, vector, ttl)


class SemanticCacheLayer(SemanticLayer):
    def __init__(
        self, embedder: Embedder, candidates: Candidates, threshold: float, ttl: float | None
    ) -> None:
        self.embedder = embedder
        self.candidates = candidates
        self.threshold = threshold
        self.ttl = ttl
        # find() embeds the prompt; remember() (after the upstream answered) reuses it.
        self._embedded: dict[int, tuple[str, str, np.ndarray]] = {}

    async def find(self, call: Call, request: ParsedRequest, prefix: str) -> Semantic | None:
        text, context = last_user_turn(request.chat())
        if not text.strip():
            return None
        vector = (await self.embedder.embed([text]))[0]
        if len(self._embedded) > 4096:  # requests that never stored (errors, no-store)
            self._embedded.clear()
        self._embedded[id(request)] = (text, context, vector)
        found = await self.candidates.lookup(vector, text, prefix + context, self.threshold)
        if found is None:
            return None
        return Semantic(key=found[0], similarity=found[1])

    async def remember(self, call: Call, request: ParsedRequest, prefix: str, key: str) -> None:
        text, context = last_user_turn(request.chat())
        if not text.strip():
            return
        found = self._embedded.pop(id(request), None)
        if found is not None and found[:2] == (text, context):
            vector = found[2]
        else:  # an id reused by another request: embed afresh
            vector = (await self.embedder.embed([text]))[0]
        await self.candidates.add(vector, prefix + context, key, text, self.ttl)


def build_semantic(
    settings: CacheSettings, environ: Mapping[str, str], clock: Clock, store: CacheStore
) -> SemanticCacheLayer:
    embedder = LocalEmbedder.load()
    threshold = settings.similarity_threshold or DEFAULT_THRESHOLD
    candidates: Candidates
    if isinstance(store, RedisStore):
        candidates = InRedis(RedisVectors(store, dim=embedder.dimensions))
    else:
        candidates = InMemory(SemanticIndex(embedder.dimensions, clock=clock.monotonic))
    return SemanticCacheLayer(embedder, candidates, threshold, settings.ttl_s)
