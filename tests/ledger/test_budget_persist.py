"""A key's spend on its reusable budget (``budget_id``) is flushed like every account and
restored after a restart: still there, still enforced, and apart from the key's own spend."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

from proxy.auth import hash_key
from proxy.hierarchy import key_budget_account
from proxy.store import SpendLogRow
from proxy.store.postgres import PostgresStore
from tests.inprocess import FakeClock
from tests.ledger.hierarchy_gateway import bearer, chat, new_key, post, started
from tests.store.conftest import pg_url, postgres  # noqa: F401  (a real PostgreSQL)

BUDGET = 0.0003
DAY = 86_400.0


def _read(tmp: Path) -> dict[str, float]:
    with sqlite3.connect(tmp / "tollway.db") as db:
        return dict(db.execute("SELECT account, spend FROM key_budget_spend").fetchall())


async def stored(tmp: Path) -> dict[str, float]:
    return await asyncio.to_thread(_read, tmp)


async def spend_until_refused(client: httpx.AsyncClient, key: str) -> list[int]:
    codes = []
    for _ in range(10):
        resp = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        codes.append(resp.status_code)
        if resp.status_code != 200:
            assert resp.json()["error"]["type"] == "budget_exceeded", resp.text
            break
    return codes


async def test_a_keys_budget_spend_survives_a_restart_and_is_still_enforced(
    tmp_path: Path,
) -> None:
    async with started(tmp_path) as (client, gateway):
        await post(client, "/budget/new", {"budget_id": "tiny", "max_budget": BUDGET})
        key = await new_key(client, budget_id="tiny")
        codes = await spend_until_refused(client, key)
        assert codes[0] == 200 and codes[-1] == 429
        account = key_budget_account(hash_key(key), "tiny")
        spent = gateway.state.ledger.spend(account)
        assert spent is not None and 0 < spent <= BUDGET
        # The key's own spend is set back to 0 by the master key; the budget's is not.
        await post(client, "/key/update", {"key": key, "spend": 0})
    assert (await stored(tmp_path)) == {f"{hash_key(key)}:tiny": spent}
    async with started(tmp_path) as (client, gateway):
        assert gateway.state.ledger.spend(account) is None  # registered on first use
        resp = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["type"] == "budget_exceeded"
        assert gateway.state.ledger.spend(account) == spent
        # Raising the budget lets the key go on from the stored spend, not from 0.
        await post(client, "/budget/update", {"budget_id": "tiny", "max_budget": 1.0})
        resp = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert resp.status_code == 200, resp.text
        after = gateway.state.ledger.spend(account)
        assert after is not None and after > spent
    assert (await stored(tmp_path))[f"{hash_key(key)}:tiny"] == after


async def test_a_budget_reset_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    async with started(tmp_path, clock=clock) as (client, gateway):
        await post(
            client,
            "/budget/new",
            {"budget_id": "daily", "max_budget": 2 * BUDGET, "budget_duration": "1d"},
        )
        key = await new_key(client, budget_id="daily")
        assert (await spend_until_refused(client, key))[-1] == 429
        clock.advance(2 * DAY)  # the budget resets; the key's own spend does not
        resp = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert resp.status_code == 200, resp.text
        account = key_budget_account(hash_key(key), "daily")
        since_reset = gateway.state.ledger.spend(account)
        key_spend = gateway.state.ledger.spend(f"key:{hash_key(key)}")
        assert since_reset is not None and key_spend is not None
        assert since_reset < key_spend
    # After a restart the budget holds what was spent since its reset, not the key's spend.
    async with started(tmp_path, clock=clock) as (client, gateway):
        resp = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert resp.status_code == 200, resp.text
        spend = gateway.state.ledger.spend(account)
        assert spend is not None and since_reset < spend < key_spend


async def test_on_postgresql_a_keys_budget_spend_is_flushed_as_increments(
    pg_url: str,  # noqa: F811  (the fixture imported above)
) -> None:
    store = await PostgresStore.connect(pg_url, pool_size=2)
    account = key_budget_account("h1", "b1")

    def log(request_id: str, cost: float) -> SpendLogRow:
        return SpendLogRow(request_id=request_id, key_hash="h1", model="m", cost=cost)

    async def spend() -> dict[str, float]:
        return {row.account: row.spend for row in await store.key_budget_spend.all()}

    try:
        # The first flush makes the row from the ledger's figure (seeded with the key's
        # earlier spend, 1.0, plus this batch); replaying the batch adds nothing.
        first = log("r1", 0.5)
        await store.apply_flush([(account, 1.5, None)], [first])
        await store.apply_flush([(account, 1.5, None)], [first])
        assert await spend() == {"h1:b1": 1.5}
        # Then only the inserted rows count: another replica's figure is not taken.
        await store.apply_flush([(account, 2.0, None)], [log("r2", 0.5)])
        await store.apply_flush([(account, 0.25, None)], [log("r3", 0.25)])
        assert await spend() == {"h1:b1": 2.25}
    finally:
        await store.close()
