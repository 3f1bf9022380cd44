"""The gateway with the Redis ledger, in process: admission awaited in the pipeline, spend
billed in Redis, and Redis faults answered as configured (503 in the contract's shape, or
admitted locally with the spend-log row marked)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.ledger.base import LOCAL_TAG
from proxy.ledger.redis import RedisLedger
from tests.cache.conftest import RedisServer, own_redis, redis, redis_server  # noqa: F401
from tests.inprocess import InProcessGateway, bearer
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x-upstream",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
COST_NANOS = 14_000  # 10 * 0.000001 + 2 * 0.000002 dollars
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def gateway(tmp: Path, server: RedisServer, calls: int, **cli: Any) -> InProcessGateway:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(calls)])
    return await InProcessGateway.build(
        tmp, CONFIG, transport=upstream, redis_url=server.url, redis_timeout_ms=200, **cli
    )


async def new_key(client: Any, **fields: Any) -> tuple[str, str]:
    response = await client.post("/key/generate", json=fields, headers=bearer())
    assert response.status_code == 200, response.text
    body = response.json()
    return body["key"], body["token"]


async def test_calls_are_admitted_and_billed_in_redis(
    tmp_path: Path,
    redis: RedisServer,  # noqa: F811
) -> None:
    gw = await gateway(tmp_path, redis, 3)
    async with gw.running() as client:
        ledger = gw.state.ledger
        assert isinstance(ledger, RedisLedger)
        key, token = await new_key(client, max_budget=1.0, rpm_limit=2)
        for _ in range(2):
            response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
            assert response.status_code == 200, response.text
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limit_error"
        await ledger.flush()
        totals = await ledger.totals(f"key:{token}")
        assert totals["spend"] == 2 * COST_NANOS
        assert totals["reserved"] == 0 and totals["inflight"] == 0


async def test_closed_answers_503_fast_when_redis_is_down(
    tmp_path: Path,
    own_redis: RedisServer,  # noqa: F811
) -> None:
    gw = await gateway(tmp_path, own_redis, 1)
    async with gw.running() as client:
        key, _ = await new_key(client, max_budget=1.0)
        await asyncio.to_thread(own_redis.kill)
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert time.monotonic() - started < 1.0
        assert response.status_code == 503
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "ledger_unavailable" and "Redis" in error["message"]
        assert gw.state.ledger.outstanding() == (0, 0.0)


async def test_open_admits_locally_and_marks_the_spend_log_row(
    tmp_path: Path,
    own_redis: RedisServer,  # noqa: F811
) -> None:
    gw = await gateway(tmp_path, own_redis, 1, redis_failure="open")
    async with gw.running() as client:
        key, _ = await new_key(client, max_budget=1.0)
        await asyncio.to_thread(own_redis.kill)
        response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert response.status_code == 200, response.text
        call_id = response.headers["x-tollway-call-id"]
    rows = await asyncio.to_thread(_spend_log_tags, gw.db_path)
    assert rows == [(call_id, [LOCAL_TAG])]


def _spend_log_tags(db: Path) -> list[tuple[str, list[str]]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT call_id, tags FROM spend_logs").fetchall()
    return [(call_id, orjson.loads(tags)) for call_id, tags in found]


@pytest.mark.parametrize("failure", ["closed", "open"])
async def test_redis_stopped_mid_load(
    tmp_path: Path,
    own_redis: RedisServer,  # noqa: F811
    failure: str,
) -> None:
    gw = await gateway(tmp_path, own_redis, 120, redis_failure=failure)
    async with gw.running() as client:
        key, _ = await new_key(client, max_budget=10.0)

        async def one() -> int:
            response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
            return response.status_code

        first = await asyncio.gather(*(one() for _ in range(40)))
        killing = asyncio.create_task(asyncio.to_thread(own_redis.kill))
        started = time.monotonic()
        during = await asyncio.gather(*(one() for _ in range(80)))
        await killing
        elapsed = time.monotonic() - started
        assert first == [200] * 40
        if failure == "closed":
            assert set(during) <= {200, 503} and 503 in during
        else:
            assert during == [200] * 80
        assert elapsed < 5.0  # every call bounded by the deadline, none hung
        assert gw.state.ledger.outstanding() == (0, 0.0)
        ledger = gw.state.ledger
        assert isinstance(ledger, RedisLedger)
        if failure == "open":
            assert ledger.local_admits > 0
