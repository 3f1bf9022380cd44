"""Three gateway processes on one Redis enforce one set of limits and budgets exactly, and
the reservations of a replica killed mid-load are reclaimed after the lease."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cache.conftest import RedisServer
from tests.conftest import GatewayProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.multiproc.shared import PREFIX, admin_post, chat, start, start_many

LEASE_S = 1.0


class Replicas:
    def __init__(self, redis: RedisServer, gateways: list[GatewayProcess], db: Path) -> None:
        self.redis = redis
        self.gateways = gateways
        self.db = db
        self.keys: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def replicas(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    redis = RedisServer(tmp)
    redis.start()
    env = {"TOLLWAY_REDIS_URL": redis.url, "TOLLWAY_REDIS_LEASE_S": str(LEASE_S)}
    first = start(tmp, "a", fake_openai, env)
    gateways = [first]
    try:
        group = Replicas(redis, gateways, tmp / "shared.db")
        admin_post(first, "/team/new", {"team_id": "race-team", "max_budget": 0.6})
        for name, fields in (
            ("rpm", {"rpm_limit": 10}),
            ("race", {"max_budget": 1.0, "team_id": "race-team"}),
            ("killed", {"max_budget": 100.0}),
        ):
            group.keys[name] = admin_post(first, "/key/generate", fields)
        gateways += start_many(tmp, ["b", "c"], fake_openai, env)
        yield group
    finally:
        for gateway in gateways:
            gateway.stop()
        redis.stop()


@pytest.fixture
async def store(replicas: Replicas) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(replicas.redis.url, driver_info=None)
    yield client
    await client.aclose()


async def account(store: aioredis.Redis, account_id: str) -> dict[str, int]:
    raw = await store.hgetall(PREFIX + "a:" + account_id)
    return {k.decode(): int(v) for k, v in raw.items()}


async def idle(store: aioredis.Redis, account_id: str, timeout: float = 5.0) -> dict[str, int]:
    """The account once nothing is in flight in Redis (or as seen at the deadline)."""
    deadline = time.monotonic() + timeout
    totals = await account(store, account_id)
    while (totals.get("inflight") or totals.get("reserved")) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        totals = await account(store, account_id)
    return totals


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {key['key']}"}


async def test_rpm_10_admits_exactly_10_across_three_processes(replicas: Replicas) -> None:
    key = replicas.keys["rpm"]
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{replicas.gateways[i % 3].url}/v1/chat/completions",
                    json=chat(),
                    headers=bearer(key),
                )
                for i in range(30)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 20


async def test_300_concurrent_requests_never_overshoot_key_or_team_budget(
    replicas: Replicas, store: aioredis.Redis
) -> None:
    key = replicas.keys["race"]
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{replicas.gateways[i % 3].url}/v1/chat/completions",
                    json=chat(),
                    headers=bearer(key),
                )
                for i in range(300)
            )
        )
    ok = sum(r.status_code == 200 for r in responses)
    refused = [r for r in responses if r.status_code == 429]
    assert ok + len(refused) == 300 and ok > 0 and refused
    assert all(r.json()["error"]["type"] == "budget_exceeded" for r in refused)
    team = await idle(store, "team:race-team")
    own = await idle(store, f"key:{key['token']}")
    assert team["reserved"] == own["reserved"] == 0
    assert team["inflight"] == own["inflight"] == 0
    assert team["spend"] <= 600_000_000  # the team's 0.60: the tighter budget
    assert own["spend"] == team["spend"] == ok * 29_000_000  # 0.029 a call


async def test_a_killed_replicas_reservations_are_reclaimed_after_the_lease(
    replicas: Replicas, store: aioredis.Redis
) -> None:
    key = replicas.keys["killed"]
    victim = replicas.gateways[2]
    account_id = f"key:{key['token']}"
    async with httpx.AsyncClient(timeout=30) as client:
        # Calls the victim finished more than one flush interval (200 ms) before it dies.
        for _ in range(3):
            done = await client.post(
                f"{victim.url}/v1/chat/completions", json=chat(), headers=bearer(key)
            )
            assert done.status_code == 200
        await asyncio.sleep(0.5)

        async def stream() -> None:
            body = chat("slow", stream=True)
            url = f"{victim.url}/v1/chat/completions"
            try:
                async with client.stream("POST", url, json=body, headers=bearer(key)) as reply:
                    async for _ in reply.aiter_bytes():
                        pass
            except httpx.TransportError:
                pass  # the replica died under it

        streams = [asyncio.create_task(stream()) for _ in range(5)]
        deadline = time.monotonic() + 5
        while (await account(store, account_id)).get("inflight", 0) < 5:
            assert time.monotonic() < deadline, "the streams were never admitted"
            await asyncio.sleep(0.02)
        victim.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.proc.wait, 5)
        killed_at = time.monotonic()
        await asyncio.gather(*streams)
        assert (await account(store, account_id))["inflight"] == 5
        # The next admission on a live replica after the lease sweeps them.
        survivor = replicas.gateways[0]
        while True:
            response = await client.post(
                f"{survivor.url}/v1/chat/completions", json=chat(), headers=bearer(key)
            )
            assert response.status_code == 200
            totals = await idle(store, account_id, timeout=0.5)
            if not totals.get("inflight"):
                break
            assert time.monotonic() - killed_at < LEASE_S + 3, totals
            await asyncio.sleep(0.2)
    assert time.monotonic() - killed_at >= LEASE_S * 0.9
    assert totals["reserved"] == 0
    # Its logged spend was flushed before it died: not lost.
    rows = await asyncio.to_thread(_spend_rows, replicas.db, key["token"])
    assert rows >= 3


def _spend_rows(db: Path, token: str) -> int:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT COUNT(*) FROM spend_logs WHERE key_hash = ? AND status = 'success'", (token,)
        ).fetchone()
    return int(found[0])
