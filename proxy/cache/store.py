"""Where cache entries live: the ``CacheStore`` protocol and the in-memory LRU.

The local store is bounded in bytes (``TOLLWAY_CACHE_MAX_BYTES``), evicts the least recently
used entry first, and drops an entry when its TTL has passed (checked on read: no timers).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

DEFAULT_LOCAL_TTL_S = 3600.0


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def clear(self, namespace_prefix: str) -> int: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class LocalStore:
    __slots__ = ("_clock", "_entries", "_size", "max_bytes")

    def __init__(self, max_bytes: int, clock: Callable[[], float]) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        value, expires = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, self._clock() + (ttl_s or DEFAULT_LOCAL_TTL_S))
        self._size += len(value) + len(key)
        while self._size > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    async def delete(self, keys: Sequence[str]) -> int:
        gone = 0
        for key in keys:
            if key in self._entries:
                self._drop(key)
                gone += 1
        return gone

    async def clear(self, namespace_prefix: str) -> int:
        doomed = [k for k in self._entries if k.startswith(namespace_prefix)]
        return await self.delete(doomed)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()
        self._size = 0

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._size -= len(value) + len(key)
