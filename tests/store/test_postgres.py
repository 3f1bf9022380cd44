"""The PostgreSQL store against a real server: same interface as SQLite, increments not totals."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import asyncpg
import pytest

from proxy.store import KeyRow, SpendLogRow, Store, TeamRow, UserRow
from proxy.store.open import is_postgres_url, open_store
from proxy.store.postgres import PG_MIGRATIONS, PostgresStore, redact, to_postgres
from proxy.store.sqlite import MIGRATIONS


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.connect(pg_url, pool_size=4)
    try:
        yield store
    finally:
        await store.close()


def key(token_hash: str = "h1", **over: object) -> KeyRow:
    fields: dict[str, object] = dict(
        token_hash=token_hash,
        key_alias="alias",
        team_id="t1",
        user_id="u1",
        models=["gpt-4o"],
        max_budget=10.0,
        rpm_limit=60,
        metadata={"env": "prod", "nested": {"a": [1, 2]}},
        tags=["x"],
        blocked=True,
        created_at=1.0,
    )
    fields.update(over)
    return KeyRow(**fields)  # type: ignore[arg-type]


def log(request_id: str, cost: float = 0.5, **over: object) -> SpendLogRow:
    fields: dict[str, object] = dict(
        request_id=request_id,
        key_hash="h1",
        user_id="u1",
        team_id="t1",
        model="gpt-4o",
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost=cost,
        start_time=100.0,
        tags=["a"],
        guardrails=[{"name": "g", "action": "allow"}],
    )
    fields.update(over)
    return SpendLogRow(**fields)  # type: ignore[arg-type]


async def seed(store: Store) -> None:
    await store.keys.upsert(key())
    await store.teams.upsert(TeamRow(team_id="t1", created_at=1.0))
    await store.users.upsert(UserRow(user_id="u1", created_at=1.0))


def test_sqlite_sql_is_translated_to_postgres_parameters() -> None:
    sql = "SELECT a FROM t WHERE b = ? AND c = ? ORDER BY created_at, rowid LIMIT ? OFFSET ?"
    assert to_postgres(sql) == (
        "SELECT a FROM t WHERE b = $1 AND c = $2 ORDER BY created_at, seq LIMIT $3 OFFSET $4"
    )


def test_only_postgres_urls_select_postgres_and_passwords_are_redacted() -> None:
    assert is_postgres_url("postgresql://u:p@h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("sqlite:///x.db") and not is_postgres_url(None)
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_every_sqlite_migration_has_a_postgres_version() -> None:
    assert [(m.version, m.name) for m in PG_MIGRATIONS] == [(m.version, m.name) for m in MIGRATIONS]


async def test_migrations_apply_once_even_when_replicas_start_together(pg_url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.connect(pg_url, pool_size=2) for _ in range(3)))
    try:
        expected = [(m.version, m.name) for m in PG_MIGRATIONS]
        for store in stores:
            assert await store.applied_migrations() == expected
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_open_store_selects_postgres_with_a_bounded_pool(pg_url: str) -> None:
    store = await open_store(pg_url, "unused.db", pool_size=3)
    try:
        assert isinstance(store, PostgresStore)
        assert store._pool.get_max_size() == 3
        assert "***" not in store.path or ":" in store.path
    finally:
        await store.close()


async def test_records_round_trip_and_upsert_keeps_spend(store: PostgresStore) -> None:
    await seed(store)
    got = await store.keys.get("h1")
    assert got == key()
    await store.apply_flush([], [log("r1", cost=2.0)])
    await store.keys.upsert(key(key_alias="renamed", blocked=False, spend=0.0))
    got = await store.keys.get("h1")
    assert got is not None and got.key_alias == "renamed" and got.blocked is False
    assert got.spend == 2.0 and got.created_at == 1.0
    await store.keys.upsert(key("h2", team_id="t2", created_at=2.0))
    assert await store.keys.count() == 2 and await store.keys.count(team_id="t2") == 1
    assert [k.token_hash for k in await store.keys.list(page=1, size=1)] == ["h1"]
    assert [k.token_hash for k in await store.keys.list(page=2, size=1)] == ["h2"]
    assert await store.keys.delete("h2") is True and await store.keys.delete("h2") is False
    keys, teams, users = await store.load_all()
    assert [k.token_hash for k in keys] == ["h1"]
    assert [t.team_id for t in teams] == ["t1"] and [u.user_id for u in users] == ["u1"]


async def test_a_replayed_flush_inserts_one_row_per_request_and_adds_spend_once(
    store: PostgresStore,
) -> None:
    await seed(store)
    batch = [log("r1", cost=1.25), log("r2", cost=0.75)]
    await store.apply_flush([("key:h1", 99.0, None)], batch)
    await store.apply_flush([("key:h1", 99.0, None)], batch)
    assert await store.count_spend_logs() == 2
    got_key, got_team, got_user = (
        await store.keys.get("h1"),
        await store.teams.get("t1"),
        await store.users.get("u1"),
    )
    # Absolute totals from the ledger are never written: only the rows' increments.
    assert got_key is not None and got_key.spend == 2.0
    assert got_team is not None and got_team.spend == 2.0
    assert got_user is not None and got_user.spend == 2.0


async def test_two_replicas_flushing_at_once_both_add_their_spend(pg_url: str) -> None:
    first = await PostgresStore.connect(pg_url, pool_size=2)
    second = await PostgresStore.connect(pg_url, pool_size=2)
    try:
        await seed(first)
        batches = [[log(f"{name}-{i}", cost=0.01) for i in range(50)] for name in ("a", "b")]
        for _ in range(2):  # each replica also retries its batch once
            await asyncio.gather(
                first.apply_flush([("key:h1", 0.5, None)], batches[0]),
                second.apply_flush([("key:h1", 0.5, None)], batches[1]),
            )
        got = await first.keys.get("h1")
        assert got is not None and got.spend == pytest.approx(1.0)
        assert await second.count_spend_logs() == 100
    finally:
        await first.close()
        await second.close()


async def test_a_budget_reset_zeroes_spend_once_before_new_rows_add(store: PostgresStore) -> None:
    await store.keys.upsert(key(budget_duration="1d", budget_reset_at=50.0))
    await store.apply_flush([], [log("old", cost=3.0)])
    # The stored boundary (50) has passed: the ledger reset the budget to the next one.
    await store.apply_flush([("key:h1", 1.0, 4_000_000_000.0)], [log("new", cost=1.0)])
    await store.apply_flush([("key:h1", 1.0, 4_000_000_000.0)], [log("new", cost=1.0)])
    got = await store.keys.get("h1")
    assert got is not None and got.spend == 1.0 and got.budget_reset_at == 4_000_000_000.0


async def test_unknown_account_ids_are_refused_before_any_write(store: PostgresStore) -> None:
    with pytest.raises(ValueError, match="unknown ledger account"):
        await store.apply_flush([("org:x", 1.0, None)], [log("r1")])
    assert await store.count_spend_logs() == 0


async def test_spend_queries_match_the_sqlite_store(store: PostgresStore) -> None:
    await seed(store)
    await store.apply_flush(
        [],
        [
            log("r1", cost=1.0, start_time=10.0),
            log("r2", cost=2.0, start_time=20.0, model="claude", cache_hit=True),
            log("r3", cost=4.0, start_time=30.0, key_hash="h9", team_id=None),
        ],
    )
    rows = await store.spend_logs(start=15.0)
    assert [r.request_id for r in rows] == ["r3", "r2"]
    assert rows[1].guardrails == [{"name": "g", "action": "allow"}] and rows[1].cache_hit
    assert [r.request_id for r in await store.spend_logs(key_hash="h1", page_size=1)] == ["r2"]
    report = await store.spend_report("model")
    assert [(r["group"], r["spend"], r["requests"]) for r in report] == [
        ("gpt-4o", 5.0, 2),
        ("claude", 2.0, 1),
    ]
    assert report[1]["cache_hits"] == 1
    assert await store.sum_spend_logs_by_key() == {"h1": 3.0, "h9": 4.0}


async def test_admin_changes_are_announced_on_the_notify_channel(store: PostgresStore) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await store.listen()
    try:
        await conn.add_listener("tollway_records", lambda *args: received.put_nowait(args[3]))
        await store.keys.upsert(key())
        assert '"id" : "h1"' in await asyncio.wait_for(received.get(), 1)
        # Spend written by a flush is not an admin change: nothing is announced.
        await store.apply_flush([], [log("r1")])
        await store.keys.delete("h1")
        payload = await asyncio.wait_for(received.get(), 1)
        assert '"op" : "delete"' in payload and received.empty()
    finally:
        await conn.close()


async def test_a_down_server_fails_to_connect_with_a_clear_error() -> None:
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await PostgresStore.connect(
            "postgresql://u:p@127.0.0.1:1/none?sslmode=disable", pool_size=1
        )


def test_every_store_method_that_talks_to_sqlite_directly_has_a_postgres_version() -> None:
    # A method written over the primitives (_fetchall, _admin_write, ...) runs on both; one
    # that uses the SQLite connection itself must be overridden, or it breaks on PostgreSQL.
    direct = {
        name
        for name, member in vars(Store).items()
        if inspect.isfunction(member) and "self._db" in inspect.getsource(member)
    }
    assert direct - set(vars(PostgresStore)) == set()
