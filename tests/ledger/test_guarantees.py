"""The ledger's promises, each against a real gateway process and a real SQLite file.

Prices are set in the config so the arithmetic is known: the fake upstream reports 11
prompt and 9 completion tokens (20 on ``trickle``), so a ``priced`` call costs exactly
11 * 0.001 + 9 * 0.002 = 0.029.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

CALL_COST = 0.029
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


def ledger_config(upstream: FakeOpenAI) -> str:
    lines = ["model_list:"]
    for name, model in (
        ("priced", "fake-ok"),
        ("trickle", "fake-trickle"),
        ("nousage", "fake-no-usage"),
    ):
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
            "    model_info:",
            "      input_cost_per_token: 0.001",
            "      output_cost_per_token: 0.002",
            "      max_output_tokens: 100",
        ]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ledger_gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start_gateway(tmp_path_factory.mktemp("ledger"), ledger_config(fake_openai))
    yield proc
    proc.stop()


@pytest.fixture
async def client(ledger_gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(base_url=ledger_gateway.url, timeout=30, limits=limits) as c:
        yield c


async def new_key(client: httpx.AsyncClient, **fields: Any) -> str:
    resp = await client.post("/key/generate", json=fields, headers=MASTER)
    assert resp.status_code == 200, resp.text
    key = resp.json()["key"]
    assert isinstance(key, str)
    return key


def chat(model: str = "priced", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        **extra,
    }


async def ledger_status(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/ledger/status", headers=MASTER)
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


async def settled(client: httpx.AsyncClient, timeout: float = 5.0) -> dict[str, Any]:
    """The ledger status once nothing is in flight (or the last one seen at the deadline)."""
    deadline = time.monotonic() + timeout
    status = await ledger_status(client)
    while status["in_flight"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await ledger_status(client)
    return status


def db_path(gateway: GatewayProcess) -> Path:
    return gateway.log_path.parent / "tollway.db"


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


async def flushed_query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    await asyncio.sleep(0.6)  # three flush intervals
    return await asyncio.to_thread(query, path, sql, *params)


def key_hash(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


async def test_budget_never_exceeded_under_200_concurrent_requests(
    client: httpx.AsyncClient, ledger_gateway: GatewayProcess
) -> None:
    budget = 0.5
    key = await new_key(client, max_budget=budget)
    headers = {"authorization": f"Bearer {key}"}
    replies = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=chat(), headers=headers) for _ in range(200))
    )
    ok = [r for r in replies if r.status_code == 200]
    rejected = [r for r in replies if r.status_code != 200]
    assert ok, "some requests fit the budget"
    assert len(ok) <= math.floor(budget / CALL_COST)
    for reply in rejected:
        assert reply.status_code == 429
        assert reply.json()["error"]["type"] == "budget_exceeded"
        assert reply.headers["x-should-retry"] == "false"
    status = await settled(client)
    assert status["in_flight"] == 0
    assert status["reserved"] == 0
    info = (await client.get("/key/info", params={"key": key}, headers=MASTER)).json()
    spend = info["info"]["spend"] if "info" in info else info["spend"]
    assert spend <= budget
    assert spend == pytest.approx(len(ok) * CALL_COST)
    rows = await flushed_query(
        db_path(ledger_gateway),
        "SELECT COUNT(*), SUM(cost) FROM spend_logs WHERE key_hash = ? AND status = 'success'",
        key_hash(key),
    )
    assert rows[0][0] == len(ok)
    assert rows[0][1] == pytest.approx(spend)


async def test_team_budget_shared_by_two_keys_is_never_exceeded(
    client: httpx.AsyncClient,
) -> None:
    budget = 0.4
    resp = await client.post(
        "/team/new", json={"team_alias": "shared", "max_budget": budget}, headers=MASTER
    )
    assert resp.status_code == 200, resp.text
    team_id = resp.json()["team_id"]
    keys = [await new_key(client, team_id=team_id) for _ in range(2)]
    replies = await asyncio.gather(
        *(
            client.post(
                "/v1/chat/completions",
                json=chat(),
                headers={"authorization": f"Bearer {keys[i % 2]}"},
            )
            for i in range(200)
        )
    )
    ok = [r for r in replies if r.status_code == 200]
    assert ok
    assert len(ok) <= math.floor(budget / CALL_COST)
    assert {r.status_code for r in replies} <= {200, 429}
    info = (await client.get("/team/info", params={"team_id": team_id}, headers=MASTER)).json()
    team = info.get("team_info", info)
    assert team["spend"] <= budget
    assert team["spend"] == pytest.approx(len(ok) * CALL_COST)
    assert (await settled(client))["reserved"] == 0


async def test_rpm_limit_admits_exactly_ten_then_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    key = await new_key(client, rpm_limit=10)
    headers = {"authorization": f"Bearer {key}"}
    codes = []
    for _ in range(11):
        reply = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        codes.append(reply.status_code)
    assert codes == [200] * 10 + [429]
    assert reply.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    ok = await client.post("/v1/chat/completions", json=chat(), headers=MASTER)
    assert ok.status_code == 200, "the limit is the key's, not the gateway's"


async def test_ratelimit_and_spend_headers_on_replies(client: httpx.AsyncClient) -> None:
    key = await new_key(client, rpm_limit=100, tpm_limit=100_000, max_budget=10)
    reply = await client.post(
        "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {key}"}
    )
    assert reply.headers["x-ratelimit-limit-requests"] == "100"
    assert reply.headers["x-ratelimit-remaining-requests"] == "99"
    assert reply.headers["x-ratelimit-limit-tokens"] == "100000"
    assert float(reply.headers["x-tollway-response-cost"]) == pytest.approx(CALL_COST)
    assert float(reply.headers["x-tollway-key-spend"]) == pytest.approx(CALL_COST)


async def test_1000_requests_with_random_cancellations_leak_nothing(
    client: httpx.AsyncClient,
) -> None:
    key = await new_key(client, max_budget=1000, max_parallel_requests=1000)
    headers = {"authorization": f"Bearer {key}"}
    rng = random.Random(7)
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        stream = i % 2 == 0
        body = chat("trickle", stream=stream)
        async with gate:
            try:
                async with asyncio.timeout(rng.uniform(0.0, 0.12)):
                    if stream:
                        async with client.stream(
                            "POST", "/v1/chat/completions", json=body, headers=headers
                        ) as resp:
                            async for _ in resp.aiter_raw():
                                pass
                    else:
                        await client.post("/v1/chat/completions", json=body, headers=headers)
            except TimeoutError:
                pass

    await asyncio.gather(*(one(i) for i in range(1000)))
    status = await settled(client, timeout=10)
    assert status["in_flight"] == 0
    assert status["reserved"] == 0
    # Every parallel slot came back: the key can still run its limit's worth at once.
    replies = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=chat(), headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in replies} == {200}


async def test_stream_is_billed_from_its_usage_chunk_and_on_disconnect(
    client: httpx.AsyncClient, ledger_gateway: GatewayProcess
) -> None:
    key = await new_key(client, max_budget=100)
    headers = {"authorization": f"Bearer {key}"}
    async with client.stream(
        "POST", "/v1/chat/completions", json=chat(stream=True), headers=headers
    ) as resp:
        raw = b"".join([c async for c in resp.aiter_raw()])
    assert b'"usage":{' not in raw, "the client did not ask for usage"
    async with client.stream(
        "POST", "/v1/chat/completions", json=chat("trickle", stream=True), headers=headers
    ) as resp:
        chunks = resp.aiter_raw()
        await anext(chunks)
        await anext(chunks)
    await settled(client)
    rows = await flushed_query(
        db_path(ledger_gateway),
        "SELECT model, status, prompt_tokens, completion_tokens, cost, estimated FROM spend_logs"
        " WHERE key_hash = ? ORDER BY end_time",
        key_hash(key),
    )
    assert rows[0] == ("priced", "success", 11, 9, pytest.approx(CALL_COST), 0)
    model, status, _prompt, completion, cost, estimated = rows[1]
    assert (model, status, estimated) == ("trickle", "cancelled", 1)
    assert completion >= 1
    assert cost > 0


async def test_sigkill_under_load_loses_at_most_one_flush_interval_and_never_double_counts(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    interval_ms = 200
    gateway = await asyncio.to_thread(
        start_gateway,
        tmp_path,
        ledger_config(fake_openai),
        {"TOLLWAY_FLUSH_INTERVAL_MS": str(interval_ms)},
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            key = await new_key(client, max_budget=10_000)
            headers = {"authorization": f"Bearer {key}"}
            done = 0
            stop_at = time.monotonic() + 1.5
            started = time.monotonic()

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < stop_at:
                    try:
                        r = await client.post("/v1/chat/completions", json=chat(), headers=headers)
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        done += 1

            workers = [asyncio.create_task(worker()) for _ in range(16)]
            await asyncio.sleep(1.0)
            gateway.proc.send_signal(signal.SIGKILL)
            await asyncio.gather(*workers)
            elapsed = time.monotonic() - started
    finally:
        await asyncio.to_thread(gateway.stop)
    db = tmp_path / "tollway.db"
    rows = await asyncio.to_thread(
        query,
        db,
        "SELECT COUNT(*), COUNT(DISTINCT request_id), COALESCE(SUM(cost), 0) FROM spend_logs"
        " WHERE key_hash = ?",
        key_hash(key),
    )
    logged, distinct, logged_cost = rows[0]
    (spend,) = (
        await asyncio.to_thread(
            query, db, "SELECT spend FROM keys WHERE token_hash = ?", key_hash(key)
        )
    )[0]
    assert logged == distinct
    assert spend == pytest.approx(logged_cost)
    rate = done / elapsed
    assert done - logged <= rate * (interval_ms / 1000) * 2 + 10
    # A restart restores the key's spend from SQLite.
    again = await asyncio.to_thread(start_gateway, tmp_path, ledger_config(fake_openai), None)
    try:
        async with httpx.AsyncClient(base_url=again.url, timeout=10) as client:
            info = (await client.get("/key/info", params={"key": key}, headers=MASTER)).json()
            restored = info["info"]["spend"] if "info" in info else info["spend"]
            assert restored == pytest.approx(spend)
    finally:
        await asyncio.to_thread(again.stop)


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


async def test_requests_keep_flowing_while_another_process_holds_the_write_lock(
    client: httpx.AsyncClient, ledger_gateway: GatewayProcess
) -> None:
    key = await new_key(client, max_budget=100)
    headers = {"authorization": f"Bearer {key}"}
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(db_path(ledger_gateway)),
        "5",
        stdout=subprocess.PIPE,
    )
    assert locker.stdout is not None
    assert (await locker.stdout.readline()).strip() == b"locked"
    sent = 0
    slowest = 0.0
    until = time.monotonic() + 4
    while time.monotonic() < until:
        started = time.monotonic()
        reply = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        slowest = max(slowest, time.monotonic() - started)
        assert reply.status_code == 200
        sent += 1
        await asyncio.sleep(0.05)
    assert slowest < 1.0, "the request path never waits for SQLite"
    await locker.wait()
    deadline = time.monotonic() + 5
    while True:
        rows = await asyncio.to_thread(
            query,
            db_path(ledger_gateway),
            "SELECT COUNT(*) FROM spend_logs WHERE key_hash = ?",
            key_hash(key),
        )
        if rows[0][0] == sent or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert rows[0][0] == sent
    status = await ledger_status(client)
    assert status["flush"]["failures"] >= 1, "the flush did meet the lock and retried"


async def test_reply_without_usage_is_billed_by_estimate_and_flagged(
    client: httpx.AsyncClient, ledger_gateway: GatewayProcess
) -> None:
    key = await new_key(client, max_budget=100)
    reply = await client.post(
        "/v1/chat/completions", json=chat("nousage"), headers={"authorization": f"Bearer {key}"}
    )
    assert reply.status_code == 200
    assert "usage" not in reply.json()
    assert float(reply.headers["x-tollway-response-cost"]) > 0
    rows = await flushed_query(
        db_path(ledger_gateway),
        "SELECT estimated, prompt_tokens, completion_tokens, cost FROM spend_logs"
        " WHERE key_hash = ?",
        key_hash(key),
    )
    estimated, prompt, completion, cost = rows[0]
    assert estimated == 1
    assert prompt > 0 and completion > 0
    assert cost == pytest.approx(prompt * 0.001 + completion * 0.002)
