"""Two gateway replicas on one real PostgreSQL: admin changes on one reach the other in < 1 s,
and spend written by both adds up (increments, never overwritten totals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, chat_body, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
_PRICED = """\
model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/fake-ok
      api_base: {base}
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""


@pytest.fixture
def replicas(
    fake_openai: FakeOpenAI, pg_url: str, tmp_path: Path
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    config = _PRICED.format(base=fake_openai.base_url)
    env = {"DATABASE_URL": pg_url, "TOLLWAY_REPLICAS": "2", "TOLLWAY_FLUSH_INTERVAL_MS": "50"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_gateway(tmp_path / "a", config, env)
    try:
        second = start_gateway(tmp_path / "b", config, env)
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _chat(gateway: GatewayProcess, key: str) -> int:
    reply = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=chat_body(),
        headers={"authorization": f"Bearer {key}"},
        timeout=5,
    )
    return reply.status_code


def _seconds_until(condition: Callable[[], bool], limit_s: float = 1.0) -> float:
    """How long until ``condition`` holds; fails past ``limit_s``."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < limit_s, f"not true after {elapsed:.2f} s"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_key_created_blocked_and_deleted_on_one_replica_acts_on_the_other_within_1_s(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = replicas
    made = httpx.post(f"{first.url}/key/generate", json={}, headers=ADMIN, timeout=5)
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    _seconds_until(lambda: _chat(second, key) == 200)

    blocked = httpx.post(f"{first.url}/key/block", json={"key": key}, headers=ADMIN, timeout=5)
    assert blocked.status_code == 200, blocked.text
    _seconds_until(lambda: _chat(second, key) == 403)

    unblocked = httpx.post(f"{second.url}/key/unblock", json={"key": key}, headers=ADMIN)
    assert unblocked.status_code == 200, unblocked.text
    _seconds_until(lambda: _chat(first, key) == 200)

    deleted = httpx.post(f"{first.url}/key/delete", json={"keys": [key]}, headers=ADMIN)
    assert deleted.status_code == 200, deleted.text
    _seconds_until(lambda: _chat(second, key) == 401)
    assert _chat(first, key) == 401


def test_spend_from_both_replicas_adds_up_in_the_shared_store(
    replicas: tuple[GatewayProcess, GatewayProcess], pg_url: str
) -> None:
    first, second = replicas
    made = httpx.post(f"{first.url}/key/generate", json={}, headers=ADMIN, timeout=5)
    key = made.json()["key"]
    _seconds_until(lambda: _chat(second, key) == 200)  # that call is billed too
    for gateway in (first, second, first, second):
        assert _chat(gateway, key) == 200

    def logged() -> int:
        rows = httpx.get(f"{first.url}/spend/logs", headers=ADMIN, timeout=5).json()
        return len(rows if isinstance(rows, list) else rows.get("data", []))

    _seconds_until(lambda: logged() >= 5, limit_s=5)
    first.stop()
    second.stop()
    rows, logged_cost, key_spend = asyncio.run(_stored_spend(pg_url))
    assert rows == 5
    assert logged_cost > 0
    assert key_spend == pytest.approx(logged_cost)


async def _stored_spend(url: str) -> tuple[int, float, float]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT COUNT(*) FROM spend_logs")
        cost = await conn.fetchval("SELECT COALESCE(SUM(cost), 0) FROM spend_logs")
        spend = await conn.fetchval("SELECT spend FROM keys")
    finally:
        await conn.close()
    return int(rows), float(cost), float(spend)
