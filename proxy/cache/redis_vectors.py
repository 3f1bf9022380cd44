"""The semantic cache's entries in Redis, so replicas share them.

redis-server 7.0 has no vector search, so Redis only stores and selects; the gateway compares:

    tollway:semantic:entry:<entry key>   hash {vector: float32 bytes, context, text, key}, TTL
    tollway:semantic:ctx:<context>       sorted set of entry keys scored by when they were added
                                         (newest first), at most ``max_members``, its TTL the
                                         longest of its entries'

``context`` is opaque here; callers put the namespace/scope prefix in front of the context
hash, so ``clear(prefix)`` removes one namespace. An entry whose hash expired is skipped and
dropped from its set when next read. It goes through the cache store's ``RedisGuard``: a Redis
that is down or slow gives no candidates, and ``add``/``delete`` become no-ops.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .redis_store import RedisStore, scan_unlink

ENTRY_PREFIX = "tollway:semantic:entry:"
CONTEXT_PREFIX = "tollway:semantic:ctx:"
_FIELDS = ("vector", "context", "text")

Candidate = tuple[str, str, npt.NDArray[np.float32]]


class RedisVectors:
    """Per conversation context, the newest entries' (key, prompt text, embedding)."""

    __slots__ = ("dim", "max_members", "store")

    def __init__(self, store: RedisStore, *, max_members: int = 64, dim: int | None = None) -> None:
        self.store = store
        self.max_members = max_members
        self.dim = dim

    async def add(
        self,
        entry_key: str,
        context: str,
        text: str,
        vector: npt.ArrayLike,
        ttl_s: float | None,
    ) -> None:
        if ttl_s is not None and ttl_s <= 0:
            return
        packed = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1).tobytes()
        entry = ENTRY_PREFIX + entry_key
        members = CONTEXT_PREFIX + context
        client = self.store.client
        score = self.store.guard.clock.time()

        async def call() -> None:
            pipe = client.pipeline(transaction=False)
            pipe.hset(
                entry,
                mapping={"vector": packed, "context": context, "text": text, "key": entry_key},
            )
            if ttl_s is None:
                pipe.persist(entry)
                pipe.persist(members)
            else:
                ms = max(1, round(ttl_s * 1000))
                pipe.pexpire(entry, ms)
            pipe.zadd(members, {entry_key: score})
            # The oldest beyond the bound leave the set, and their hashes go with them.
            pipe.zrange(members, 0, -(self.max_members + 1))
            pipe.zremrangebyrank(members, 0, -(self.max_members + 1))
            if ttl_s is not None:
                # A new set has no TTL (NX sets it); a set that has one only ever grows it (GT).
                pipe.pexpire(members, ms, nx=True)
                pipe.pexpire(members, ms, gt=True)
            results = await pipe.execute()
            dropped: list[bytes] = results[4 if ttl_s is None else 3]
            if dropped:
                await client.unlink(*[ENTRY_PREFIX.encode() + m for m in dropped])

        await self.store.guard.run("semantic add", call, None)

    async def candidates(self, context: str, limit: int | None = None) -> list[Candidate]:
        """Up to ``limit`` (default ``max_members``) entries of the context, newest first;
        empty when Redis fails."""
        members = CONTEXT_PREFIX + context
        count = self.max_members if limit is None else min(limit, self.max_members)
        if count <= 0:
            return []
        client = self.store.client

        async def call() -> list[Candidate]:
            keys = cast("list[bytes]", await client.zrevrange(members, 0, count - 1))
            if not keys:
                return []
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(ENTRY_PREFIX.encode() + key, _FIELDS)
            rows: list[list[Any]] = await pipe.execute()
            found: list[Candidate] = []
            stale: list[bytes] = []
            for key, (vector, owner, text) in zip(keys, rows, strict=True):
                if vector is None or owner is None or owner.decode() != context:
                    stale.append(key)
                    continue
                array = np.frombuffer(vector, dtype=np.float32)
                if self.dim is not None and array.shape[0] != self.dim:
                    continue
                found.append((key.decode(), (text or b"").decode(), array.copy()))
            if stale:
                await client.zrem(members, *stale)
            return found

        return await self.store.guard.run("semantic candidates", call, [])

    async def delete(self, entry_key: str) -> bool:
        """Forget one entry; whether it was there."""
        entry = ENTRY_PREFIX + entry_key
        client = self.store.client

        async def call() -> bool:
            owner = cast("bytes | None", await client.hget(entry, "context"))
            pipe = client.pipeline(transaction=False)
            pipe.unlink(entry)
            if owner is not None:
                pipe.zrem(CONTEXT_PREFIX.encode() + owner, entry_key)
            removed = await pipe.execute()
            return bool(removed[0])

        return await self.store.guard.run("semantic delete", call, False)

    async def clear(self, namespace_prefix: str) -> int:
        """Remove the entries and context sets whose key / context begin with the prefix."""
        return await scan_unlink(
            self.store,
            "semantic clear",
            [ENTRY_PREFIX + namespace_prefix, CONTEXT_PREFIX + namespace_prefix],
        )
