"""Several workers on one SQLite file with Redis: an admin change made through one worker
reaches the others within 1 s by Redis pub/sub (each re-reads the record from the file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cache.conftest import RedisServer
from tests.conftest import MASTER_KEY
from tests.inprocess import InProcessGateway, bearer

CONFIG = f"""\
model_list:
  - model_name: m
    litellm_params:
      model: mock/mock-gpt
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis-propagation"))
    server.start()
    yield server.url
    server.stop()


async def within(limit_s: float, check: Callable[[], Awaitable[bool]]) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < limit_s, f"not true within {limit_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def status(client: httpx.AsyncClient, key: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    reply = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    return reply.status_code


async def test_admin_changes_reach_the_other_worker_within_1_s(
    tmp_path: Path, redis_url: str
) -> None:
    options = {"workers": 2, "redis_url": redis_url}
    first = await InProcessGateway.build(tmp_path, CONFIG, **options)
    second = await InProcessGateway.build(tmp_path, CONFIG, **options)
    async with first.running() as one, second.running() as two:
        made = await one.post("/key/generate", json={}, headers=bearer())
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        await within(1, lambda: _is(two, key, 200))

        assert (
            await one.post("/key/block", json={"key": key}, headers=bearer())
        ).status_code == 200
        await within(1, lambda: _is(two, key, 403))

        deleted = await one.post("/key/delete", json={"keys": [key]}, headers=bearer())
        assert deleted.status_code == 200
        await within(1, lambda: _is(two, key, 401))


async def _is(client: httpx.AsyncClient, key: str, code: int) -> bool:
    return await status(client, key) == code
