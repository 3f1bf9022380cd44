import _sqlite3
import asyncio
import contextlib
import ctypes
import time
from pathlib import Path

import aiosqlite
import msgspec
import pytest
from blockbuster import BlockBuster

from proxy.store import KeyRow, SpendLogRow, Store, TeamRow, UserRow
from proxy.store.sqlite import _LOGS, MIGRATIONS


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "tollway.db")


@pytest.fixture
async def store(db_path: str):
    store = await Store.open(db_path)
    try:
        yield store
    finally:
        await store.close()


def full_key(token_hash: str = "h1", **over) -> KeyRow:
    fields = dict(
        token_hash=token_hash,
        key_alias="alias",
        key_name="sk-...abcd",
        team_id="t1",
        user_id="u1",
        models=["gpt-4o", "claude"],
        max_budget=10.0,
        soft_budget=8.0,
        budget_duration="30d",
        budget_reset_at=1_700_000_000.0,
        spend=0.0,
        rpm_limit=60,
        tpm_limit=1000,
        max_parallel_requests=4,
        metadata={"env": "prod", "nested": {"a": [1, 2]}},
        tags=["x", "y"],
        blocked=True,
        key_type="llm_api",
        expires=1_800_000_000.0,
        created_at=1.0,
        updated_at=2.0,
        created_by="admin",
    )
    fields.update(over)
    return KeyRow(**fields)


def log(request_id: str, **over) -> SpendLogRow:
    fields = dict(
        request_id=request_id,
        key_hash="h1",
        user_id="u1",
        team_id="t1",
        model="gpt-4o",
        deployment="openai/gpt-4o",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        total_tokens=15,
        cost=0.5,
        latency_ms=12.5,
        status="success",
        status_code=200,
        tags=["a"],
        estimated=False,
        start_time=100.0,
        end_time=101.0,
    )
    fields.update(over)
    return SpendLogRow(**fields)


async def columns(db_path: str, table: str) -> list[str]:
    async with aiosqlite.connect(db_path) as db:
        rows = await db.execute_fetchall(f"PRAGMA table_info({table})")
    return [r[1] for r in rows]


async def test_migrations_apply_once_and_reopen_is_idempotent(db_path: str) -> None:
    first = await Store.open(db_path)
    await first.keys.upsert(full_key())
    await first.close()
    second = await Store.open(db_path)
    try:
        applied = await second.applied_migrations()
        assert applied == [(m.version, m.name) for m in MIGRATIONS]
        assert applied[0] == (1, "initial")
        assert await second.keys.get("h1") == full_key()
    finally:
        await second.close()


async def test_concurrent_opens_apply_migrations_once(db_path: str) -> None:
    stores = await asyncio.gather(*(Store.open(db_path) for _ in range(4)))
    try:
        for store in stores:
            assert await store.applied_migrations() == [(m.version, m.name) for m in MIGRATIONS]
    finally:
        for store in stores:
            await store.close()


async def test_wal_journal_mode_is_on(store: Store, db_path: str) -> None:
    async with aiosqlite.connect(db_path) as db, db.execute("PRAGMA journal_mode") as cursor:
        row = await cursor.fetchone()
    assert row == ("wal",)


@pytest.mark.parametrize(
    ("table", "row_type"),
    [
        pytest.param("keys", KeyRow, id="keys"),
        pytest.param("teams", TeamRow, id="teams"),
        pytest.param("users", UserRow, id="users"),
        pytest.param("spend_logs", SpendLogRow, id="spend_logs"),
    ],
)
async def test_schema_columns_match_record_fields(
    store: Store, db_path: str, table: str, row_type: type[msgspec.Struct]
) -> None:
    # Migrations append columns, so compare the sets, not the order.
    assert sorted(await columns(db_path, table)) == sorted(row_type.__struct_fields__)


async def test_key_upsert_get_list_delete(store: Store) -> None:
    key = full_key()
    await store.keys.upsert(key)
    await store.keys.upsert(KeyRow(token_hash="h2", team_id="t2", created_at=3.0))
    await store.keys.upsert(KeyRow(token_hash="h3", team_id="t1", user_id="u2", created_at=4.0))

    assert await store.keys.get("h1") == key
    assert await store.keys.get("missing") is None
    minimal = await store.keys.get("h2")
    assert minimal is not None
    assert (minimal.models, minimal.metadata, minimal.tags, minimal.blocked) == ([], {}, [], False)

    assert [k.token_hash for k in await store.keys.list()] == ["h1", "h2", "h3"]
    assert [k.token_hash for k in await store.keys.list(team_id="t1")] == ["h1", "h3"]
    assert [k.token_hash for k in await store.keys.list(team_id="t1", user_id="u2")] == ["h3"]
    assert [k.token_hash for k in await store.keys.list(page=2, size=2)] == ["h3"]
    assert await store.keys.count(team_id="t1") == 2

    updated = msgspec.structs.replace(key, key_alias="renamed", blocked=False, models=[])
    await store.keys.upsert(updated)
    assert await store.keys.get("h1") == updated

    assert await store.keys.delete("h1") is True
    assert await store.keys.delete("h1") is False
    assert await store.keys.get("h1") is None
    assert await store.keys.count() == 2


async def test_team_upsert_get_list_delete(store: Store) -> None:
    team = TeamRow(
        team_id="t1",
        team_alias="core",
        models=["gpt-4o"],
        max_budget=100.0,
        budget_duration="1mo",
        rpm_limit=10,
        tpm_limit=20,
        max_parallel_requests=3,
        members=[{"user_id": "u1", "role": "admin"}],
        metadata={"k": "v"},
        blocked=True,
        created_at=1.0,
        updated_at=1.0,
    )
    await store.teams.upsert(team)
    await store.teams.upsert(TeamRow(team_id="t2", created_at=2.0))
    assert await store.teams.get("t1") == team
    assert [t.team_id for t in await store.teams.list()] == ["t1", "t2"]
    assert [t.team_id for t in await store.teams.list(page=2, size=1)] == ["t2"]
    assert await store.teams.count() == 2
    assert await store.teams.delete("t1") is True
    assert await store.teams.get("t1") is None
    assert await store.teams.delete("t1") is False


async def test_user_upsert_get_list_delete(store: Store) -> None:
    user = UserRow(
        user_id="u1",
        user_email="a@example.com",
        user_role="internal_user",
        max_budget=5.0,
        budget_duration="1d",
        models=["m"],
        rpm_limit=1,
        tpm_limit=2,
        max_parallel_requests=3,
        metadata={"team": None},
        created_at=1.0,
        updated_at=1.0,
    )
    await store.users.upsert(user)
    await store.users.upsert(UserRow(user_id="u2", user_role="proxy_admin", created_at=2.0))
    assert await store.users.get("u1") == user
    assert [u.user_id for u in await store.users.list()] == ["u1", "u2"]
    assert [u.user_id for u in await store.users.list(user_role="proxy_admin")] == ["u2"]
    assert await store.users.count(user_role="internal_user") == 1
    assert await store.users.delete("u1") is True
    assert await store.users.get("u1") is None


async def test_list_rejects_invalid_pages(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.keys.list(page=0)
    with pytest.raises(ValueError):
        await store.teams.list(size=0)
    with pytest.raises(ValueError):
        await store.spend_logs(page_size=0)


async def test_load_all_returns_every_entity(store: Store) -> None:
    await store.keys.upsert(full_key("h1"))
    await store.keys.upsert(full_key("h2"))
    await store.teams.upsert(TeamRow(team_id="t1"))
    await store.users.upsert(UserRow(user_id="u1"))
    keys, teams, users = await store.load_all()
    assert sorted(k.token_hash for k in keys) == ["h1", "h2"]
    assert [t.team_id for t in teams] == ["t1"]
    assert [u.user_id for u in users] == ["u1"]


@pytest.mark.parametrize(
    ("account", "stale", "table"),
    [
        pytest.param("key:h1", full_key(), "keys", id="key"),
        pytest.param("team:t1", TeamRow(team_id="t1", created_at=1.0), "teams", id="team"),
        pytest.param("user:u1", UserRow(user_id="u1", created_at=1.0), "users", id="user"),
    ],
)
async def test_admin_upsert_does_not_clobber_ledger_spend(
    store: Store, account: str, stale: msgspec.Struct, table: str
) -> None:
    records = getattr(store, table)
    await records.upsert(stale)
    await store.apply_flush([(account, 7.25, 2_000_000_000.0)], [])

    # An admin edit made from a copy read before the flush, with a changed created_at too.
    edited = msgspec.structs.replace(stale, max_budget=99.0, created_at=50.0, updated_at=60.0)
    await records.upsert(edited)

    row = await records.get(account.split(":")[1])
    assert row.spend == 7.25
    assert row.budget_reset_at == 2_000_000_000.0
    assert row.max_budget == 99.0
    assert row.updated_at == 60.0
    assert row.created_at == 1.0


async def test_apply_flush_is_idempotent_and_spend_absolute(store: Store) -> None:
    await store.keys.upsert(KeyRow(token_hash="h1"))
    await store.users.upsert(UserRow(user_id="u1"))
    await store.teams.upsert(TeamRow(team_id="t1"))
    updates = [("key:h1", 1.5, None), ("user:u1", 2.5, 10.0), ("team:t1", 3.5, 20.0)]
    logs = [log("r1"), log("r2", cost=1.0)]

    await store.apply_flush(updates, logs)
    await store.apply_flush(updates, logs)

    assert await store.count_spend_logs() == 2
    assert await store.sum_spend_logs_by_key() == {"h1": 1.5}
    key, user, team = (
        await store.keys.get("h1"),
        await store.users.get("u1"),
        await store.teams.get("t1"),
    )
    assert (key.spend, key.budget_reset_at) == (1.5, None)
    assert (user.spend, user.budget_reset_at) == (2.5, 10.0)
    assert (team.spend, team.budget_reset_at) == (3.5, 20.0)
    assert (await store.spend_logs())[-1] == logs[0]


def test_spend_logs_are_inserted_in_chunks_of_a_few_statement_sizes() -> None:
    width = len(_LOGS.columns)
    assert _LOGS.rows_per_insert == 16

    def sizes(count: int) -> list[int]:
        inserts = _LOGS.batch_inserts([log(f"r{n}") for n in range(count)])
        return [len(params) // width for _, params in inserts]

    assert sizes(0) == []
    assert sizes(1) == [1]
    assert sizes(16) == [16]
    assert sizes(300) == [16] * 18 + [8, 4]
    assert sizes(15) == [8, 4, 2, 1]
    # Each chunk's rows are in order, the JSON columns encoded.
    (_, params), *_ = _LOGS.batch_inserts([log("a", tags=["x"]), log("b")])
    assert params[0] == "a" and params[width] == "b"
    assert params[_LOGS.columns.index("tags")] == '["x"]'


async def test_a_large_flush_writes_every_row_once(store: Store) -> None:
    first = [log(f"r{n:03d}", cost=n / 1000, start_time=float(n)) for n in range(300)]
    await store.apply_flush([], first)
    again = first + [log(f"s{n}", start_time=400.0 + n) for n in range(5)]
    await store.apply_flush([], again)  # a replayed flush plus new rows

    assert await store.count_spend_logs() == 305
    written = await store.spend_logs(page_size=1000)
    assert sorted(written, key=lambda row: row.request_id) == sorted(
        again, key=lambda row: row.request_id
    )


async def test_a_flush_offers_the_cpu_between_inserts_only_in_its_first_moments(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One CPU, a writer running its INSERTs back to back: the event loop waited a scheduler
    # slice (3-5 ms) at the start of nearly every flush. The writer yields between them, for
    # the window only: past it, under load, yielding would let the flush fall behind.
    from proxy.store import sqlite

    yields: list[float] = []
    monkeypatch.setattr(sqlite, "_sched_yield", lambda: yields.append(time.perf_counter()))
    rows = [log(f"y{n:03d}") for n in range(40)]  # statements of 16, 16 and 8 rows
    await store.apply_flush([("key:h1", 1.0, None)], rows)
    assert len(yields) == len(_LOGS.batch_inserts(rows)) == 3

    monkeypatch.setattr(sqlite, "_YIELD_WINDOW_S", 0.0)
    yields.clear()
    await store.apply_flush([], [log(f"z{n:03d}") for n in range(40)])
    assert yields == []
    assert await store.count_spend_logs() == 80


async def test_a_flush_is_one_hop_to_the_database_thread_however_busy_the_loop(
    store: Store, blockbuster: BlockBuster
) -> None:
    # Under load every event-loop turn is long. A flush awaited statement by statement
    # (BEGIN, each chunk of rows, COMMIT) waits a turn between each, and fell seconds behind
    # at 1,000 connections; written in one hop it waits about one.
    turns = 0
    busy = True

    async def long_turns() -> None:
        nonlocal turns
        while busy:
            time.sleep(0.05)  # the point: a loop turn that takes 50 ms
            turns += 1
            await asyncio.sleep(0)

    blockbuster.functions["time.sleep"].deactivate()
    hog = asyncio.create_task(long_turns())
    await asyncio.sleep(0)
    try:
        rows = [log(f"r{n:04d}") for n in range(1000)]  # 10 chunks
        await store.apply_flush([("key:h1", 1.0, None)], rows)
        during = turns
    finally:
        busy = False
        await hog
    assert await store.count_spend_logs() == 1000
    assert during <= 6, during  # statement by statement: 12 hops, at least 12 turns


async def test_a_cancelled_flush_commits_or_rolls_back_whole(store: Store) -> None:
    await store.keys.upsert(KeyRow(token_hash="h1"))
    for turns in range(6):
        rows = [log(f"c{turns}-{n:04d}") for n in range(1000)]
        flush = asyncio.create_task(store.apply_flush([("key:h1", float(turns), None)], rows))
        for _ in range(turns):
            await asyncio.sleep(0)
        flush.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flush
        # A read queued behind the flush: it sees all of the flush's rows or none.
        written = await store._fetchall(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id LIKE ?", (f"c{turns}-%",)
        )
        assert written[0][0] in (0, 1000)
        assert not store._db.in_transaction
    await store.apply_flush([("key:h1", 9.0, None)], [log("after")])
    assert (await store.keys.get("h1")).spend == 9.0


async def test_apply_flush_rejects_unknown_account_before_writing(store: Store) -> None:
    await store.keys.upsert(KeyRow(token_hash="h1"))
    for bad in ("org:o1", "key", "key:", "h1"):
        with pytest.raises(ValueError):
            await store.apply_flush([("key:h1", 1.0, None), (bad, 1.0, None)], [log("r1")])
    assert (await store.keys.get("h1")).spend == 0.0
    assert await store.count_spend_logs() == 0


async def test_apply_flush_is_one_transaction(store: Store) -> None:
    await store.keys.upsert(KeyRow(token_hash="h1"))
    broken = SpendLogRow(request_id=None)  # type: ignore[arg-type]  # violates NOT NULL
    with pytest.raises(aiosqlite.IntegrityError):
        await store.apply_flush([("key:h1", 4.0, None)], [log("r1"), broken])
    assert (await store.keys.get("h1")).spend == 0.0
    assert await store.count_spend_logs() == 0
    # The connection is usable (no transaction left open).
    await store.apply_flush([("key:h1", 4.0, None)], [log("r1")])
    assert (await store.keys.get("h1")).spend == 4.0


async def test_spend_logs_filters_and_pagination(store: Store) -> None:
    rows = [
        log("a", key_hash="k1", user_id="u1", team_id="t1", model="m1", start_time=1.0),
        log("b", key_hash="k1", user_id="u2", team_id="t1", model="m2", start_time=2.0),
        log("c", key_hash="k2", user_id="u1", team_id="t2", model="m1", start_time=3.0),
        log("d", key_hash="k2", user_id="u2", team_id="t2", model="m2", start_time=4.0),
        log("e", key_hash="k1", user_id="u1", team_id="t1", model="m1", start_time=5.0),
    ]
    await store.apply_flush([], rows)

    async def ids(**kw) -> list[str]:
        return [r.request_id for r in await store.spend_logs(**kw)]

    assert await ids() == ["e", "d", "c", "b", "a"]
    assert await ids(key_hash="k1") == ["e", "b", "a"]
    assert await ids(user_id="u2") == ["d", "b"]
    assert await ids(team_id="t2") == ["d", "c"]
    assert await ids(model="m1", key_hash="k1") == ["e", "a"]
    assert await ids(start=2.0, end=4.0) == ["c", "b"]
    assert await ids(page=1, page_size=2) == ["e", "d"]
    assert await ids(page=3, page_size=2) == ["a"]
    assert await ids(page=4, page_size=2) == []


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        pytest.param("key", {"k1": (3.0, 2), "k2": (4.0, 1)}, id="key"),
        pytest.param("team", {"t1": (1.0, 1), "t2": (6.0, 2)}, id="team"),
        pytest.param("user", {"u1": (5.0, 2), "u2": (2.0, 1)}, id="user"),
        pytest.param("model", {"m1": (5.0, 2), "m2": (2.0, 1)}, id="model"),
    ],
)
async def test_spend_report_groups(store: Store, group_by: str, expected: dict) -> None:
    await store.apply_flush(
        [],
        [
            log("a", key_hash="k1", team_id="t1", user_id="u1", model="m1", cost=1.0),
            log("b", key_hash="k1", team_id="t2", user_id="u2", model="m2", cost=2.0),
            log("c", key_hash="k2", team_id="t2", user_id="u1", model="m1", cost=4.0),
            log("z", key_hash="k2", cost=100.0, start_time=500.0),  # outside the window
        ],
    )
    report = await store.spend_report(group_by, start=0.0, end=200.0)  # type: ignore[arg-type]
    assert {r["group"]: (r["spend"], r["requests"]) for r in report} == expected
    assert [r["spend"] for r in report] == sorted((r["spend"] for r in report), reverse=True)
    for r in report:
        assert r["prompt_tokens"] == 10 * r["requests"]
        assert r["completion_tokens"] == 5 * r["requests"]
        assert r["total_tokens"] == 15 * r["requests"]


@pytest.mark.parametrize("group_by", ["cost", "key_hash; DROP TABLE spend_logs", ""])
async def test_spend_report_rejects_unknown_group_by(store: Store, group_by: str) -> None:
    with pytest.raises(ValueError):
        await store.spend_report(group_by)  # type: ignore[arg-type]
    assert await store.count_spend_logs() == 0  # table still there


async def test_sql_injection_looking_values_are_stored_literally(store: Store) -> None:
    evil = "x'); DROP TABLE keys; --"
    always_true = "' OR '1'='1"
    await store.keys.upsert(full_key("h1", key_alias=evil, team_id=evil, metadata={evil: evil}))
    await store.keys.upsert(full_key("h2", team_id="t-other"))
    await store.apply_flush([], [log(evil, key_hash=evil, model=always_true)])

    key = await store.keys.get("h1")
    assert (key.key_alias, key.team_id, key.metadata) == (evil, evil, {evil: evil})
    assert [k.token_hash for k in await store.keys.list(team_id=evil)] == ["h1"]
    assert await store.keys.list(team_id=always_true) == []
    assert await store.keys.get(always_true) is None
    assert [r.request_id for r in await store.spend_logs(model=always_true)] == [evil]
    assert await store.spend_logs(key_hash=always_true) == []
    assert (await store.spend_report("model"))[0]["group"] == always_true
    assert await store.keys.count() == 2


def _sqlite_memory_used() -> int:
    """Bytes SQLite has allocated in this process (``sqlite3_memory_used``)."""
    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return int(used())


async def test_release_memory_frees_the_page_cache_a_burst_of_writes_filled(store: Store) -> None:
    # The memory trimmer calls this in a quiet spell (server/trim.py): the cache a burst of
    # spend-log writes fills (to SQLite's default 2 MB) is freed, then given back.
    before = _sqlite_memory_used()
    for batch in range(40):
        await store.apply_flush([], [log(f"b{batch}-{n}") for n in range(500)])
    filled = _sqlite_memory_used()
    assert filled - before > 1_000_000
    await store.release_memory()
    assert filled - _sqlite_memory_used() > 1_000_000
    assert await store.count_spend_logs() == 20_000  # nothing lost, still readable
