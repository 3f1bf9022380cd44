"""The cache in Redis, shared by replicas: a ``CacheStore`` that turns every failure into a miss.

A Redis that is down, slow or refusing must cost a request almost nothing, so every call goes
through one ``RedisGuard``:

    timeout   each round trip is bounded by ``timeout_s`` (default 50 ms), connecting included
    miss      a failure or timeout makes ``get`` return None and ``set``/``delete`` no-ops;
              it is counted (``errors``) and logged at most once per ``LOG_EVERY_S``
    breaker   after ``breaker_failures`` connection failures in a row Redis is skipped for
              ``breaker_pause_s`` (counted in ``skipped``); then one call probes it, and its
              success closes the breaker

Keys are ``tollway:cache:<key>``; the stage's keys already begin with ``<namespace>:<scope>:``
(``key.py``), so ``clear(namespace_prefix)`` removes one namespace or scope with SCAN + UNLINK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..clock import Clock, SystemClock

log = logging.getLogger("tollway.cache.redis")

T = TypeVar("T")

KEY_PREFIX = "tollway:cache:"
LOG_EVERY_S = 10.0
_SCAN_BATCH = 500
# Failures that say "Redis is not there": they trip the breaker. Any other RedisError (a
# full Redis refusing a write, a wrong type) is a miss too, but says nothing about reachability.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


def redis_client(params: Mapping[str, Any], timeout_s: float) -> aioredis.Redis:
    """A client from LiteLLM's cache_params: ``redis_url``/``url``, else ``host``/``port``/
    ``password``; ``ssl`` switches to TLS. No retries: a failed call is a miss, not a wait."""
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        # No CLIENT SETINFO: it costs a round trip per connection, and resolving the library
        # version reads package metadata from disk, a blocking call on the event loop.
        "driver_info": None,
    }
    if params.get("password") is not None:
        options["password"] = str(params["password"])
    url = params.get("redis_url") or params.get("url")
    if url:
        url = str(url)
        parts = urlsplit(url)
        if _truthy(params.get("ssl")) and parts.scheme == "redis":
            url = urlunsplit(parts._replace(scheme="rediss"))
        return aioredis.Redis.from_url(url, **options)
    return aioredis.Redis(
        host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 6379),
        ssl=_truthy(params.get("ssl")),
        **options,
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class RedisGuard:
    """Timeout, circuit breaker, error count and rate-limited log for one Redis."""

    __slots__ = (
        "_failures",
        "_last_log",
        "_open_until",
        "_probing",
        "_unlogged",
        "breaker_failures",
        "breaker_pause_s",
        "clock",
        "errors",
        "skipped",
        "timeout_s",
    )

    def __init__(
        self,
        timeout_s: float,
        breaker_failures: int,
        breaker_pause_s: float,
        clock: Clock,
    ) -> None:
        self.timeout_s = timeout_s
        self.breaker_failures = breaker_failures
        self.breaker_pause_s = breaker_pause_s
        self.errors = 0
        self.skipped = 0
        self.clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False
        self._last_log: float | None = None
        self._unlogged = 0

    @property
    def breaker_open(self) -> bool:
        return self._open_until is not None

    async def run(self, op: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """``call()`` within the timeout, or ``fallback`` if it fails or the breaker is open."""
        probe = False
        if self._open_until is not None:
            if self._probing or self.clock.monotonic() < self._open_until:
                self.skipped += 1
                return fallback
            # The pause is over: this call alone probes Redis; the others keep skipping.
            probe = self._probing = True
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except _UNREACHABLE as exc:
            self._failed(op, exc, unreachable=True)
            return fallback
        except RedisError as exc:
            self._failed(op, exc, unreachable=False)
            return fallback
        finally:
            if probe:
                self._probing = False
        if self._open_until is not None:
            log.warning("redis cache: answering again; the breaker is closed")
        self._failures = 0
        self._open_until = None
        return result

    def _failed(self, op: str, exc: BaseException, *, unreachable: bool) -> None:
        self.errors += 1
        now = self.clock.monotonic()
        tripped = False
        if unreachable:
            self._failures += 1
            if self._failures >= self.breaker_failures:
                tripped = self._open_until is None
                self._open_until = now + self.breaker_pause_s
        if self._last_log is not None and now - self._last_log < LOG_EVERY_S:
            self._unlogged += 1
            return
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        suffix = f"; {self._unlogged} more failures since the last report" if self._unlogged else ""
        breaker = (
            f"; skipping Redis for {self.breaker_pause_s:g}s at a time"
            if tripped or self._open_until is not None
            else ""
        )
        log.warning(
            "redis cache: %s failed, treated as a miss (%s)%s%s", op, reason, suffix, breaker
        )
        self._last_log = now
        self._unlogged = 0


class RedisStore:
    """A ``CacheStore`` in Redis. It never raises and never waits longer than ``timeout_s``
    per round trip: a Redis that is down or slow is a miss."""

    __slots__ = ("_prefix", "client", "guard")

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        timeout_s: float = 0.05,
        breaker_failures: int = 3,
        breaker_pause_s: float = 3.0,
        clock: Clock | None = None,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.client = client
        self.guard = RedisGuard(
            timeout_s, breaker_failures, breaker_pause_s, clock or SystemClock()
        )
        self._prefix = prefix

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        timeout_s: float = 0.05,
        breaker_failures: int = 3,
        breaker_pause_s: float = 3.0,
        clock: Clock | None = None,
    ) -> RedisStore:
        """From LiteLLM's cache_params (``CacheSettings.redis``): host, port, password,
        redis_url / url, ssl."""
        return cls(
            redis_client(params, timeout_s),
            timeout_s=timeout_s,
            breaker_failures=breaker_failures,
            breaker_pause_s=breaker_pause_s,
            clock=clock,
        )

    @property
    def errors(self) -> int:
        return self.guard.errors

    @property
    def skipped(self) -> int:
        return self.guard.skipped

    async def get(self, key: str) -> bytes | None:
        name = self._prefix + key

        async def call() -> bytes | None:
            # The client decodes nothing (decode_responses is off): replies are bytes.
            return cast("bytes | None", await self.client.get(name))

        return await self.guard.run("get", call, None)

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if ttl_s is not None and ttl_s <= 0:
            return
        name = self._prefix + key
        px = None if ttl_s is None else max(1, round(ttl_s * 1000))

        async def call() -> None:
            await self.client.set(name, value, px=px)

        await self.guard.run("set", call, None)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        names = [self._prefix + k for k in keys]

        async def call() -> int:
            return int(await self.client.unlink(*names))

        return await self.guard.run("delete", call, 0)

    async def clear(self, namespace_prefix: str) -> int:
        """UNLINK every key under the prefix, a SCAN batch at a time (each batch bounded by
        the timeout); on a failure, the count removed so far."""
        return await scan_unlink(self, "clear", [self._prefix + namespace_prefix])

    async def ping(self) -> bool:
        async def call() -> bool:
            return bool(await self.client.ping())

        return await self.guard.run("ping", call, False)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.client.aclose()


async def scan_unlink(store: RedisStore, op: str, prefixes: Sequence[str]) -> int:
    """UNLINK the keys under each literal prefix with SCAN (never KEYS), through the guard."""
    deleted = 0
    for prefix in prefixes:
        pattern = glob_escape(prefix) + "*"
        cursor = 0
        while True:
            step = await store.guard.run(
                op, partial(_scan_step, store.client, cursor, pattern), None
            )
            if step is None:
                return deleted
            cursor, removed = step
            deleted += removed
            if cursor == 0:
                break
    return deleted


async def _scan_step(client: aioredis.Redis, cursor: int, pattern: str) -> tuple[int, int]:
    cursor, names = await client.scan(cursor, match=pattern, count=_SCAN_BATCH)
    removed = int(await client.unlink(*names)) if names else 0
    return int(cursor), removed


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
