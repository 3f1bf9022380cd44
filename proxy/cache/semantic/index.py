"""The semantic index: which cached prompt, if any, means the same as this one.

Entries are grouped by ``context_hash`` (a hash of everything in the request but the last
user turn: earlier turns, system prompt, model and parameters, computed by the cache
stage), so only the last user turn is compared by meaning, and only with prompts asked in
the same context. Within a group the search is brute force: one float32 matrix-vector
product over the group's unit vectors (256 dimensions: ~0.1 ms for 10k entries, ~1 ms per
100k). That is fine up to ~100k entries per context group; past that an ANN index
(usearch, hnswlib) would pay for itself.

A candidate is a hit when its cosine similarity is at least ``threshold`` and
:func:`~proxy.cache.semantic.agreement.agree` holds between the two prompts (same
numbers, identifiers, negations, entities ...); the most similar such candidate wins.

The index is bounded: past ``max_entries`` the least recently used entry (added or hit)
is evicted. Each entry may carry a TTL, read against the injected ``clock``; expired
entries are dropped when a lookup meets them or when room is needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proxy.cache.semantic.agreement import Signature, signature
from proxy.cache.semantic.embedder import Vectors

__all__ = ["DEFAULT_THRESHOLD", "SemanticIndex"]

DEFAULT_THRESHOLD = 0.87
"""Cosine similarity for a hit with :class:`~proxy.cache.semantic.embedder.LocalEmbedder`,
chosen on tests/cache/test_semantic_table.py: the most similar near miss that passes
:func:`agree` scores 0.849 ("create" / "activate a virtual environment"), so 0.87 keeps a
0.02 margin while 25 of 30 paraphrases still hit (0.85 would hit 26 with no margin)."""


@dataclass(slots=True)
class _Entry:
    key: str
    context_hash: str
    text: str
    signature: Signature
    expires_at: float | None
    slot: int


class _Group:
    """The entries of one context: their unit vectors as rows of one growing matrix."""

    __slots__ = ("entries", "size", "vectors")

    def __init__(self, dimensions: int) -> None:
        self.vectors: Vectors = np.empty((16, dimensions), dtype=np.float32)
        self.entries: list[_Entry] = []
        self.size = 0

    def add(self, entry: _Entry, vector: Vectors) -> None:
        if self.size == len(self.vectors):
            grown = np.empty((2 * self.size, self.vectors.shape[1]), dtype=np.float32)
            grown[: self.size] = self.vectors
            self.vectors = grown
        entry.slot = self.size
        self.vectors[self.size] = vector
        self.entries.append(entry)
        self.size += 1

    def remove(self, entry: _Entry) -> None:
        # Swap the last row into the hole: O(1), order within a group does not matter.
        last = self.size - 1
        moved = self.entries[last]
        self.vectors[entry.slot] = self.vectors[last]
        self.entries[entry.slot] = moved
        moved.slot = entry.slot
        self.entries.pop()
        self.size = last


# The most candidates above the threshold that get the (Python) agreement check per lookup.
MAX_CHECKED = 16


class SemanticIndex:
    """In-memory nearest-prompt index with LRU eviction and per-entry TTL."""

    __slots__ = ("_clock", "_dimensions", "_entries", "_groups", "_max_entries")

    def __init__(
        self,
        dimensions: int,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._dimensions = dimensions
        self._max_entries = max_entries
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        # Least recently used first: evicted from the front, touched to the back.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_key: object) -> bool:
        return entry_key in self._entries

    def add(
        self,
        vector: Vectors,
        context_hash: str,
        entry_key: str,
        prompt_text: str,
        *,
        ttl: float | None = None,
    ) -> None:
        """Index ``prompt_text`` (embedded as the unit ``vector``) under ``entry_key``,
        replacing any entry of that key; ``ttl`` seconds from now it expires."""
        row = self._row(vector)
        self.delete(entry_key)
        while len(self._entries) >= self._max_entries:
            self._evict_one()
        expires_at = None if ttl is None else self._clock() + ttl
        entry = _Entry(entry_key, context_hash, prompt_text, signature(prompt_text), expires_at, 0)
        group = self._groups.get(context_hash)
        if group is None:
            group = self._groups[context_hash] = _Group(self._dimensions)
        group.add(entry, row)
        self._entries[entry_key] = entry

    def lookup(
        self,
        vector: Vectors,
        text: str,
        context_hash: str,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> tuple[str, float] | None:
        """The key and similarity of the most similar live entry of ``context_hash`` whose
        similarity is at least ``threshold`` and whose prompt agrees with ``text``."""
        group = self._groups.get(context_hash)
        if group is None:
            return None
        similarities = group.vectors[: group.size] @ self._row(vector)
        above = np.flatnonzero(similarities >= threshold)
        if above.size == 0:
            return None
        if above.size > MAX_CHECKED:
            # Templated prompts ("ticket #1234") put many near-duplicates above the threshold
            # that all fail the agreement check: only the closest few are checked, so a miss
            # costs the same however many there are.
            closest = np.argpartition(-similarities[above], MAX_CHECKED - 1)[:MAX_CHECKED]
            above = above[closest]
        # Entries are read before any expiry removes one: removal reorders the group.
        ranked = [group.entries[i] for i in above[np.argsort(-similarities[above])]]
        scores = {entry.key: float(similarities[entry.slot]) for entry in ranked}
        wanted: Signature | None = None
        now = self._clock()
        for entry in ranked:
            if entry.expires_at is not None and entry.expires_at <= now:
                self._remove(entry)
                continue
            if wanted is None:
                wanted = signature(text)
            if wanted.agrees_with(entry.signature):
                self._entries.move_to_end(entry.key)
                return entry.key, scores[entry.key]
        return None

    def delete(self, entry_key: str) -> bool:
        """Forget ``entry_key``; False when it was not indexed."""
        entry = self._entries.get(entry_key)
        if entry is None:
            return False
        self._remove(entry)
        return True

    def clear(self) -> None:
        self._groups.clear()
        self._entries.clear()

    def _row(self, vector: Vectors) -> Vectors:
        row = np.asarray(vector, dtype=np.float32).reshape(-1)
        if row.shape != (self._dimensions,):
            raise ValueError(f"expected a vector of {self._dimensions} dimensions")
        return row

    def _evict_one(self) -> None:
        now = self._clock()
        # An expired entry goes before a live one; look at a few from the LRU end only.
        for _, entry in zip(range(8), self._entries.values(), strict=False):
            if entry.expires_at is not None and entry.expires_at <= now:
                self._remove(entry)
                return
        self._remove(next(iter(self._entries.values())))

    def _remove(self, entry: _Entry) -> None:
        del self._entries[entry.key]
        group = self._groups[entry.context_hash]
        group.remove(entry)
        if group.size == 0:
            del self._groups[entry.context_hash]
