"""The spend-log indexes after migration 0012, and the queries that read through them.

A row's id lookup (``/spend/logs?request_id=``) matches the log's id, the call id or the
reply's id, so it finds a call's refused attempts (``<id>#<n>``, same call id) and every
request a client tagged with the same ``x-request-id``: no one index answers it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from proxy.store import SpendLogRow, Store
from proxy.store.postgres import PostgresStore
from proxy.store.sqlite import MIGRATIONS


class RecordingStore(Store):
    """The SQLite store, keeping every query it reads with (the seam PostgreSQL overrides)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.queries: list[tuple[str, Sequence[Any]]] = []

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.queries.append((sql, params))
        return await super()._fetchall(sql, params)

    async def plan_of_last_query(self) -> list[str]:
        sql, params = self.queries[-1]
        return [str(row[3]) for row in await self.read("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordingStore]:
    store = await RecordingStore.open(str(tmp_path / "tollway.db"))
    try:
        yield store
    finally:
        await store.close()


def log(request_id: str, start_time: float, **over: Any) -> SpendLogRow:
    return SpendLogRow(
        request_id=request_id,
        call_id=over.pop("call_id", request_id),
        key_hash="h1",
        model="gpt-4o",
        cost=0.5,
        start_time=start_time,
        **over,
    )


# r1 was refused once (r1#1, same call id) and its call id was later sent back as the
# x-request-id of r4; r2 and r3 came with the client's own x-request-id "client-7".
CALLS = [
    log("r1#1", 9.0, call_id="r1", team_id="t1"),
    log("r1", 10.0, team_id="t1", response_id="chatcmpl-1"),
    log("r2", 20.0, call_id="client-7", user_id="u1", response_id="chatcmpl-2"),
    log("r3", 30.0, call_id="client-7", user_id="u1", response_id="chatcmpl-3"),
    log("r4", 40.0, call_id="r1", team_id="t2", response_id="chatcmpl-4"),
]


def spend_log_indexes(db_path: str) -> dict[str, str]:
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spend_logs'"
            " AND sql IS NOT NULL"
        ).fetchall()
    finally:
        db.close()
    return {name: " ".join(sql.split()) for name, sql in rows}


def test_migrations_drop_the_reply_id_index_and_leave_null_teams_and_users_out(
    tmp_path: Path,
) -> None:
    db_path = str(tmp_path / "fresh.db")
    db = sqlite3.connect(db_path)
    for migration in MIGRATIONS:
        db.executescript(migration.sql)
    db.close()
    indexes = spend_log_indexes(db_path)
    assert "spend_logs_response_id" not in indexes
    assert indexes["spend_logs_team_time"].endswith(
        "(team_id, start_time) WHERE team_id IS NOT NULL"
    )
    assert indexes["spend_logs_user_time"].endswith(
        "(user_id, start_time) WHERE user_id IS NOT NULL"
    )
    # Kept whole: the logs list's order, and the report by end user over the whole table.
    assert indexes["spend_logs_start_time"].endswith("ON spend_logs (start_time)")
    assert indexes["spend_logs_end_user_time"].endswith("ON spend_logs (end_user, start_time)")


@pytest.mark.parametrize(
    ("looked_up", "expected"),
    [
        pytest.param("r1", ["r4", "r1", "r1#1"], id="request-id-finds-attempts-and-reuses"),
        pytest.param("r1#1", ["r1#1"], id="an-attempt-id"),
        pytest.param("client-7", ["r3", "r2"], id="a-client-x-request-id"),
        pytest.param("chatcmpl-2", ["r2"], id="reply-id"),
        pytest.param("unknown", [], id="nothing"),
    ],
)
async def test_lookup_by_id_matches_request_call_and_reply_ids_newest_first(
    store: RecordingStore, looked_up: str, expected: list[str]
) -> None:
    await store.apply_flush([], CALLS)
    assert [r.request_id for r in await store.spend_logs(request_id=looked_up)] == expected


async def test_lookup_by_id_keeps_the_other_filters_and_paging(store: RecordingStore) -> None:
    await store.apply_flush([], CALLS)

    async def ids(**filters: Any) -> list[str]:
        return [r.request_id for r in await store.spend_logs(request_id="r1", **filters)]

    assert await ids(team_id="t1") == ["r1", "r1#1"]
    assert await ids(start=9.5, end=40.0) == ["r1"]
    assert await ids(page=2, page_size=2) == ["r1#1"]


@pytest.mark.parametrize(
    ("filters", "plan"),
    [
        # No index finds an id: a scan of the table and a sort of the few matches, not a
        # walk of the start_time index looking up every row.
        pytest.param(
            {"request_id": "r1"},
            ["SCAN spend_logs", "USE TEMP B-TREE FOR ORDER BY"],
            id="id-lookup",
        ),
        pytest.param(
            {"request_id": "r1", "team_id": "t1"},
            [
                "SEARCH spend_logs USING INDEX spend_logs_team_time (team_id=?)",
                "USE TEMP B-TREE FOR ORDER BY",
            ],
            id="id-lookup-in-a-team",
        ),
        pytest.param({}, ["SCAN spend_logs USING INDEX spend_logs_start_time"], id="all-logs"),
        pytest.param(
            {"team_id": "t1", "start": 1.0, "end": 2.0},
            [
                "SEARCH spend_logs USING INDEX spend_logs_team_time "
                "(team_id=? AND start_time>? AND start_time<?)"
            ],
            id="a-team-in-a-range",
        ),
        pytest.param(
            {"user_id": "u1"},
            ["SEARCH spend_logs USING INDEX spend_logs_user_time (user_id=?)"],
            id="a-user",
        ),
    ],
)
async def test_spend_log_listing_plans(
    store: RecordingStore, filters: dict[str, Any], plan: list[str]
) -> None:
    await store.spend_logs(**filters)
    assert await store.plan_of_last_query() == plan


@pytest.fixture
def db_at_0011(tmp_path: Path) -> str:
    """A database as migration 0011 left it, with a team's, a user's and a bare row."""
    db_path = str(tmp_path / "old.db")
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute(
            "CREATE TABLE schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in MIGRATIONS:
            if migration.version > 11:
                break
            db.executescript(migration.sql)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        db.executemany(
            "INSERT INTO spend_logs (request_id, call_id, team_id, user_id, response_id, "
            "start_time, cost, prompt_tokens, completion_tokens, cached_tokens, total_tokens, "
            "status) VALUES (?, ?, ?, ?, ?, ?, 0.5, 1, 1, 0, 2, 'success')",
            [
                ("old-1", "old-1", "t1", None, "chatcmpl-old-1", 1.0),
                ("old-2", "old-2", None, "u1", None, 2.0),
                ("old-3", "old-3", None, None, None, 3.0),
            ],
        )
    finally:
        db.close()
    assert "spend_logs_response_id" in spend_log_indexes(db_path)
    return db_path


async def test_a_database_at_0011_migrates_with_its_rows(db_at_0011: str) -> None:
    store = await Store.open(db_at_0011)
    try:
        assert (await store.applied_migrations())[-1] == (12, "lean_spend_log_indexes")
        assert [r.request_id for r in await store.spend_logs(team_id="t1")] == ["old-1"]
        assert [r.request_id for r in await store.spend_logs(user_id="u1")] == ["old-2"]
        assert [r.request_id for r in await store.spend_logs()] == ["old-3", "old-2", "old-1"]
        found = await store.spend_logs(request_id="chatcmpl-old-1")
        assert [r.request_id for r in found] == ["old-1"]
        assert await store.read("PRAGMA integrity_check") == [("ok",)]
        indexes = dict(
            await store.read(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'spend_logs' AND sql IS NOT NULL"
            )
        )
    finally:
        await store.close()
    assert "spend_logs_response_id" not in indexes
    assert "WHERE team_id IS NOT NULL" in indexes["spend_logs_team_time"]
    assert "WHERE user_id IS NOT NULL" in indexes["spend_logs_user_time"]


async def test_postgres_lookup_by_id_matches_the_sqlite_store(pg_url: str) -> None:
    store = await PostgresStore.connect(pg_url, pool_size=2)
    try:
        await store.apply_flush([], CALLS)
        for looked_up, expected in [("r1", ["r4", "r1", "r1#1"]), ("chatcmpl-2", ["r2"])]:
            found = await store.spend_logs(request_id=looked_up)
            assert [r.request_id for r in found] == expected
        indexes = await store.read(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'spend_logs'"
        )
        assert ("spend_logs_response_id",) not in [tuple(r) for r in indexes]
    finally:
        await store.close()
