"""RedisStore against a real redis-server: the CacheStore contract, and a Redis that is down,
stalled or back again being a miss — fast, never an exception."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection

from proxy.cache.redis_store import LOG_EVERY_S, RedisStore, redis_client
from proxy.cache.store import CacheStore
from tests.cache.conftest import RedisServer
from tests.inprocess import FakeClock

TIMEOUT_S = 0.05
# Well under what a caller would notice, well over the 50 ms timeout plus scheduling noise.
FAST_S = 0.1


@pytest.fixture
async def store(redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_params(redis.params, timeout_s=TIMEOUT_S)
    yield store
    await store.close()


async def timed(op: Awaitable[Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await op
    return result, time.perf_counter() - started


def test_redis_store_is_a_cache_store() -> None:
    def accepts(store: CacheStore) -> CacheStore:
        return store

    assert accepts(RedisStore.from_params({"host": "127.0.0.1"})) is not None


async def test_set_then_get_returns_the_value_and_an_unknown_key_is_none(
    store: RedisStore,
) -> None:
    await store.set("ns:team-a:k1", b"\x00reply\xff", None)
    assert await store.get("ns:team-a:k1") == b"\x00reply\xff"
    assert await store.get("ns:team-a:other") is None
    assert store.errors == 0


async def test_keys_are_stored_under_tollway_cache(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    await store.set("team-ns:global:abc", b"v", None)
    assert await admin.get("tollway:cache:team-ns:global:abc") == b"v"


async def test_ttl_is_redis_own_expiry_in_milliseconds(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    await store.set("ns:s:short", b"v", 30.0)
    await store.set("ns:s:forever", b"v", None)
    await store.set("ns:s:ms", b"v", 0.0004)
    assert 29_000 < await admin.pttl("tollway:cache:ns:s:short") <= 30_000
    assert await admin.pttl("tollway:cache:ns:s:forever") == -1
    await store.set("ns:s:expired", b"v", 0)
    assert await admin.exists("tollway:cache:ns:s:expired") == 0


async def test_delete_counts_only_the_keys_that_existed(store: RedisStore) -> None:
    await store.set("ns:s:a", b"1", None)
    await store.set("ns:s:b", b"2", None)
    assert await store.delete(["ns:s:a", "ns:s:b", "ns:s:never"]) == 2
    assert await store.get("ns:s:a") is None
    assert await store.delete([]) == 0


async def test_clear_removes_one_namespace_in_scan_batches_and_spares_the_others(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    pipe = admin.pipeline(transaction=False)
    for i in range(1_200):  # more than one SCAN batch
        pipe.set(f"tollway:cache:team-a:scope:{i}", b"x")
    pipe.set("tollway:cache:team-b:scope:1", b"kept")
    pipe.set("tollway:cache:team-ab:scope:1", b"kept")  # shares the text, not the namespace
    pipe.set("tollway:cache:te*:scope:1", b"kept")
    pipe.set("elsewhere:team-a:1", b"kept")
    await pipe.execute()

    assert await store.clear("team-a:") == 1_200
    assert await store.get("team-b:scope:1") == b"kept"
    assert await store.get("team-ab:scope:1") == b"kept"
    assert await admin.get("elsewhere:team-a:1") == b"kept"
    # A glob character in the prefix is literal: "te*" clears only "te*".
    assert await store.clear("te*:") == 1
    assert await store.get("team-b:scope:1") == b"kept"


async def test_ping_is_true_when_redis_answers(store: RedisStore) -> None:
    assert await store.ping() is True


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(lambda r: {"redis_url": r.url}, id="redis_url"),
        pytest.param(lambda r: {"url": r.url}, id="url"),
        pytest.param(lambda r: {"host": "127.0.0.1", "port": str(r.port)}, id="port-as-text"),
    ],
)
async def test_litellm_cache_params_reach_the_server(
    redis: RedisServer, params: Callable[[RedisServer], dict[str, Any]]
) -> None:
    store = RedisStore.from_params(params(redis))
    try:
        await store.set("ns:s:k", b"v", None)
        assert await store.get("ns:s:k") == b"v"
    finally:
        await store.close()


async def test_ssl_param_switches_a_plain_url_to_tls() -> None:
    for params in ({"url": "redis://cache:6380", "ssl": True}, {"host": "cache", "ssl": "true"}):
        client = redis_client(params, TIMEOUT_S)
        assert client.connection_pool.connection_class is SSLConnection
        await client.aclose()


async def test_wrong_password_is_a_miss_not_an_error(own_redis: RedisServer) -> None:
    await asyncio.to_thread(own_redis.command, b"CONFIG", b"SET", b"requirepass", b"s3cret")
    good = RedisStore.from_params({**own_redis.params, "password": "s3cret"})
    bad = RedisStore.from_params({**own_redis.params, "password": "wrong"})
    try:
        await good.set("ns:s:k", b"v", None)
        assert await good.get("ns:s:k") == b"v"
        assert await bad.get("ns:s:k") is None
        assert bad.errors == 1
    finally:
        await good.close()
        await bad.close()


async def test_a_redis_never_started_is_a_fast_miss_then_skipped_by_the_breaker(
    closed_port: int,
) -> None:
    store = RedisStore.from_params(
        {"host": "127.0.0.1", "port": closed_port}, timeout_s=TIMEOUT_S, breaker_failures=3
    )
    ops: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.get("ns:s:k"),
        lambda: store.set("ns:s:k", b"v", 60),
        lambda: store.delete(["ns:s:k"]),
        lambda: store.clear("ns:"),
        lambda: store.ping(),
    ]
    results = []
    for op in ops * 2:
        result, took = await timed(op())
        assert took < FAST_S
        results.append(result)
    assert results == [None, None, 0, 0, False] * 2
    assert store.errors == 3  # the first three reached for Redis ...
    assert store.skipped == 7  # ... and tripped the breaker: the rest cost nothing
    assert store.guard.breaker_open
    await store.close()


async def test_a_silent_redis_costs_each_call_about_the_timeout(silent_port: int) -> None:
    store = RedisStore.from_params(
        {"host": "127.0.0.1", "port": silent_port}, timeout_s=TIMEOUT_S, breaker_failures=100
    )
    for op in (
        store.get("ns:s:k"),
        store.set("ns:s:k", b"v", None),
        store.delete(["ns:s:k"]),
        store.clear("ns:"),
        store.ping(),
    ):
        _, took = await timed(op)
        assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + FAST_S
    assert store.errors == 5
    await store.close()


async def test_failures_are_logged_at_most_once_per_ten_seconds(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = RedisStore.from_params(
        {"host": "127.0.0.1", "port": closed_port}, breaker_failures=1_000, clock=clock
    )
    caplog.set_level(logging.WARNING, logger="tollway.cache.redis")
    for _ in range(50):
        assert await store.get("ns:s:k") is None
    clock.advance(LOG_EVERY_S - 0.5)
    await store.get("ns:s:k")
    assert len(caplog.records) == 1
    clock.advance(1)
    await store.get("ns:s:k")
    assert len(caplog.records) == 2
    assert "50 more failures since the last report" in caplog.records[1].getMessage()
    assert store.errors == 52
    await store.close()


async def test_a_redis_killed_mid_test_misses_then_hits_again_after_the_breaker_pause(
    own_redis: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore.from_params(
        own_redis.params,
        timeout_s=TIMEOUT_S,
        breaker_failures=3,
        breaker_pause_s=5.0,
        clock=clock,
    )
    await store.set("ns:s:k", b"before", None)
    assert await store.get("ns:s:k") == b"before"

    await asyncio.to_thread(own_redis.kill)
    for _ in range(10):
        result, took = await timed(store.get("ns:s:k"))
        assert result is None
        assert took < FAST_S
    assert (store.errors, store.skipped) == (3, 7)

    await asyncio.to_thread(own_redis.start)  # same port, empty (no persistence)
    await store.set("ns:s:k", b"after", None)
    assert await store.get("ns:s:k") is None  # still within the pause: Redis not asked
    clock.advance(5.0)
    await store.set("ns:s:k", b"after", None)  # the probe succeeds and closes the breaker
    assert not store.guard.breaker_open
    assert await store.get("ns:s:k") == b"after"
    assert store.errors == 3
    await store.close()


async def test_a_failed_probe_reopens_the_breaker_and_only_one_call_probes(
    silent_port: int,
) -> None:
    clock = FakeClock()
    store = RedisStore.from_params(
        {"host": "127.0.0.1", "port": silent_port},
        timeout_s=TIMEOUT_S,
        breaker_failures=1,
        breaker_pause_s=2.0,
        clock=clock,
    )
    assert await store.get("ns:s:k") is None
    assert (store.errors, store.guard.breaker_open) == (1, True)
    clock.advance(2.0)
    results = await asyncio.gather(*(store.get(f"ns:s:{i}") for i in range(20)))
    assert results == [None] * 20
    assert store.errors == 2  # one probe went to Redis; the other 19 were skipped
    assert store.skipped == 19
    assert await store.get("ns:s:k") is None
    assert store.errors == 2  # the failed probe started a new pause
    await store.close()


async def test_a_stalled_redis_is_a_miss_within_the_timeout_and_no_reply_goes_astray(
    own_redis: RedisServer,
) -> None:
    store = RedisStore.from_params(own_redis.params, timeout_s=TIMEOUT_S)
    await store.set("ns:s:a", b"A", None)
    await store.set("ns:s:b", b"B", None)
    own_redis.freeze()
    try:
        result, took = await timed(store.get("ns:s:a"))
    finally:
        own_redis.thaw()
    assert result is None
    assert took < TIMEOUT_S + FAST_S
    # The timed-out connection was dropped: its late "A" must not answer this request.
    assert await store.get("ns:s:b") == b"B"
    assert store.errors == 1
    await store.close()
