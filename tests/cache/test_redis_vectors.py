"""RedisVectors against a real redis-server: the semantic cache's shared entries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis

from proxy.cache.redis_store import RedisStore
from proxy.cache.redis_vectors import RedisVectors
from tests.cache.conftest import RedisServer
from tests.inprocess import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def vectors(redis: RedisServer, clock: FakeClock) -> AsyncIterator[RedisVectors]:
    store = RedisStore.from_params(redis.params, clock=clock)
    yield RedisVectors(store, max_members=3)
    await store.close()


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


async def add(
    vectors: RedisVectors, clock: FakeClock, key: str, context: str, ttl_s: float | None = 60
) -> None:
    clock.advance(1)  # entries added later are newer
    await vectors.add(key, context, f"prompt {key}", vec(len(key), 0.5, -1.25), ttl_s)


async def test_candidates_are_the_context_entries_newest_first(
    vectors: RedisVectors, clock: FakeClock
) -> None:
    await add(vectors, clock, "ns:s:a", "ns:s:ctx1")
    await add(vectors, clock, "ns:s:bb", "ns:s:ctx1")
    await add(vectors, clock, "ns:s:other", "ns:s:ctx2")

    found = await vectors.candidates("ns:s:ctx1")
    assert [(key, text) for key, text, _ in found] == [
        ("ns:s:bb", "prompt ns:s:bb"),
        ("ns:s:a", "prompt ns:s:a"),
    ]
    vector = found[0][2]
    assert vector.dtype == np.float32
    assert vector.tolist() == [7.0, 0.5, -1.25]
    vector /= 2  # the caller owns a writable copy
    assert await vectors.candidates("ns:s:nothing-here") == []


async def test_a_context_keeps_only_its_newest_entries_and_drops_the_rest(
    vectors: RedisVectors, clock: FakeClock, admin: aioredis.Redis
) -> None:
    for i in range(5):
        await add(vectors, clock, f"ns:s:{i}", "ns:s:ctx")
    assert [k for k, _, _ in await vectors.candidates("ns:s:ctx")] == [
        "ns:s:4",
        "ns:s:3",
        "ns:s:2",
    ]
    assert [k for k, _, _ in await vectors.candidates("ns:s:ctx", limit=2)] == ["ns:s:4", "ns:s:3"]
    assert await admin.exists("tollway:semantic:entry:ns:s:0", "tollway:semantic:entry:ns:s:1") == 0
    assert await admin.zcard("tollway:semantic:ctx:ns:s:ctx") == 3


async def test_delete_forgets_an_entry_and_says_whether_it_was_there(
    vectors: RedisVectors, clock: FakeClock, admin: aioredis.Redis
) -> None:
    await add(vectors, clock, "ns:s:a", "ns:s:ctx")
    await add(vectors, clock, "ns:s:b", "ns:s:ctx")
    assert await vectors.delete("ns:s:a") is True
    assert await vectors.delete("ns:s:a") is False
    assert [k for k, _, _ in await vectors.candidates("ns:s:ctx")] == ["ns:s:b"]
    assert await admin.zrange("tollway:semantic:ctx:ns:s:ctx", 0, -1) == [b"ns:s:b"]


async def test_entries_expire_in_redis_and_the_context_lives_as_long_as_its_longest(
    vectors: RedisVectors, clock: FakeClock, admin: aioredis.Redis
) -> None:
    await add(vectors, clock, "ns:s:a", "ns:s:ctx", ttl_s=100)
    await add(vectors, clock, "ns:s:b", "ns:s:ctx", ttl_s=50)
    assert 99_000 < await admin.pttl("tollway:semantic:entry:ns:s:a") <= 100_000
    assert 49_000 < await admin.pttl("tollway:semantic:entry:ns:s:b") <= 50_000
    assert 99_000 < await admin.pttl("tollway:semantic:ctx:ns:s:ctx") <= 100_000
    await add(vectors, clock, "ns:s:c", "ns:s:ctx", ttl_s=200)
    assert 199_000 < await admin.pttl("tollway:semantic:ctx:ns:s:ctx") <= 200_000
    await add(vectors, clock, "ns:s:d", "ns:s:ctx", ttl_s=None)
    assert await admin.pttl("tollway:semantic:entry:ns:s:d") == -1
    assert await admin.pttl("tollway:semantic:ctx:ns:s:ctx") == -1


async def test_an_expired_or_moved_entry_is_skipped_and_leaves_the_context(
    vectors: RedisVectors, clock: FakeClock, admin: aioredis.Redis
) -> None:
    await add(vectors, clock, "ns:s:gone", "ns:s:ctx")
    await add(vectors, clock, "ns:s:moved", "ns:s:ctx")
    await add(vectors, clock, "ns:s:kept", "ns:s:ctx")
    await admin.unlink("tollway:semantic:entry:ns:s:gone")  # as if its TTL had passed
    await add(vectors, clock, "ns:s:moved", "ns:s:elsewhere")
    assert [k for k, _, _ in await vectors.candidates("ns:s:ctx")] == ["ns:s:kept"]
    assert await admin.zrange("tollway:semantic:ctx:ns:s:ctx", 0, -1) == [b"ns:s:kept"]
    assert [k for k, _, _ in await vectors.candidates("ns:s:elsewhere")] == ["ns:s:moved"]


async def test_vectors_of_another_dimension_are_not_candidates(
    redis: RedisServer, clock: FakeClock
) -> None:
    store = RedisStore.from_params(redis.params, clock=clock)
    await RedisVectors(store).add("ns:s:old-model", "ns:s:ctx", "hi", vec(1, 2), None)
    await RedisVectors(store).add("ns:s:new-model", "ns:s:ctx", "hi", vec(1, 2, 3), None)
    found = await RedisVectors(store, dim=3).candidates("ns:s:ctx")
    assert [k for k, _, _ in found] == ["ns:s:new-model"]
    await store.close()


async def test_clear_removes_one_namespace_entries_and_contexts(
    vectors: RedisVectors, clock: FakeClock
) -> None:
    await add(vectors, clock, "team-a:s:1", "team-a:s:ctx")
    await add(vectors, clock, "team-b:s:1", "team-b:s:ctx")
    assert await vectors.clear("team-a:") == 2  # the entry and its context set
    assert await vectors.candidates("team-a:s:ctx") == []
    assert [k for k, _, _ in await vectors.candidates("team-b:s:ctx")] == ["team-b:s:1"]


async def test_a_redis_that_is_down_gives_no_candidates_fast(closed_port: int) -> None:
    store = RedisStore.from_params({"host": "127.0.0.1", "port": closed_port})
    vectors = RedisVectors(store)
    started = time.perf_counter()
    await vectors.add("ns:s:a", "ns:s:ctx", "hi", vec(1, 2), 60)
    assert await vectors.candidates("ns:s:ctx") == []
    assert await vectors.delete("ns:s:a") is False
    assert await vectors.clear("ns:") == 0
    assert time.perf_counter() - started < 0.2
    assert store.errors == 3  # then the breaker skipped the rest
    await store.close()


async def test_a_stalled_redis_gives_no_candidates_within_the_timeout(
    own_redis: RedisServer,
) -> None:
    store = RedisStore.from_params(own_redis.params, timeout_s=0.05)
    vectors = RedisVectors(store)
    await vectors.add("ns:s:a", "ns:s:ctx", "hi", vec(1, 2), 60)
    own_redis.freeze()
    try:
        started = time.perf_counter()
        assert await vectors.candidates("ns:s:ctx") == []
        took = time.perf_counter() - started
    finally:
        own_redis.thaw()
    assert took < 0.15
    assert [k for k, _, _ in await vectors.candidates("ns:s:ctx")] == ["ns:s:a"]
    await store.close()
