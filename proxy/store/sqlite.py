"""SQLite persistence: virtual keys, teams, users, spend logs (aiosqlite, WAL).

One `Store` owns one aiosqlite connection (its one worker thread). Writes are serialised by
an `asyncio.Lock`, so an admin upsert can never land inside the flusher's open transaction.

Ownership of columns: `spend` and `budget_reset_at` belong to the in-memory ledger and are
written only by `apply_flush` (absolute values, so replaying a flush is harmless). Admin
upserts write every other column, and on insert also seed `spend`/`budget_reset_at` from the
row; an upsert of an existing row keeps its `spend`, `budget_reset_at` and `created_at`.

All SQL is built from constant column names; values are always bound parameters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Literal, cast

import aiosqlite
import msgspec

from .hierarchy_rows import BudgetRow, CustomerRow, KeyBudgetSpendRow, OrganizationRow
from .table import RowT, Table

logger = logging.getLogger("tollway.store")


class KeyRow(msgspec.Struct, kw_only=True):
    """A virtual key. `token_hash` is the sha256 hex of the key; the key itself is never stored."""

    token_hash: str
    key_alias: str | None = None
    key_name: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)
    blocked: bool = False
    key_type: str | None = None
    expires: float | None = None
    created_at: float | None = None
    updated_at: float | None = None
    created_by: str | None = None


class TeamRow(msgspec.Struct, kw_only=True):
    team_id: str
    team_alias: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    members: list[Any] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    blocked: bool = False
    created_at: float | None = None
    updated_at: float | None = None


class UserRow(msgspec.Struct, kw_only=True):
    user_id: str
    user_email: str | None = None
    user_role: str | None = None
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    models: list[str] = msgspec.field(default_factory=list)
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None


class SpendLogRow(msgspec.Struct, kw_only=True, gc=False):
    """One row per request. `model` is the requested model group, `deployment` the
    provider/model actually called. `estimated` marks usage the upstream never reported."""

    request_id: str
    call_id: str | None = None
    key_hash: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    model: str | None = None
    deployment: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    latency_ms: float | None = None
    status: Literal["success", "error", "cancelled"] = "success"
    status_code: int | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    estimated: bool = False
    start_time: float | None = None
    end_time: float | None = None
    # The guardrails that ran: name, direction, action, reason (never the matched text), ms.
    guardrails: list[dict[str, Any]] = msgspec.field(default_factory=list)
    # Answered from the cache: billed 0; ``saved_cost`` is what the upstream would have cost.
    cache_hit: bool = False
    saved_cost: float = 0.0
    # The end user (customer) the request named: its ``user`` field or end-user header;
    # the organization of the key's team, when it has one.
    end_user: str | None = None
    organization_id: str | None = None
    # The id of the reply the client got (``chatcmpl-...``), when the reply carried one.
    response_id: str | None = None


SpendUpdate = tuple[str, float, float | None]
"""(account id "key:<hash>" | "user:<id>" | "team:<id>", absolute spend, budget_reset_at)."""

GroupBy = Literal["key", "team", "user", "model", "end_user"]

_ADMIN_WRITE_RETRY_S: Final = 2.0
_OPEN_BUSY_TIMEOUT_MS: Final = 5000
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6

_KEYS: Final = Table("keys", KeyRow, "token_hash")
_TEAMS: Final = Table("teams", TeamRow, "team_id")
_USERS: Final = Table("users", UserRow, "user_id")
_LOGS: Final = Table("spend_logs", SpendLogRow, "request_id")
_BUDGETS: Final = Table("budgets", BudgetRow, "budget_id")
# An end user with no record (``max_end_user_budget``) gets one with its first flushed spend.
_CUSTOMERS: Final = Table("end_users", CustomerRow, "user_id", spend_row=True)
_ORGANIZATIONS: Final = Table("organizations", OrganizationRow, "organization_id")
_KEY_BUDGETS: Final = Table("key_budget_spend", KeyBudgetSpendRow, "account", spend_row=True)

# Between the INSERTs of a flush the writer thread offers the CPU (and the GIL: the call
# releases it) to the event loop, for the first ``_YIELD_WINDOW_S`` of the flush. When the
# gateway has one CPU, the writer otherwise ran its statements back to back for a scheduler
# slice while the loop, woken by a request, waited: stalls of 3-5 ms at the start of nearly
# every flush, the slowest 0.1% of one-user requests (``bench.spikes``; with the yield,
# stalls over 2 ms in flushes went from 20-25 to 8-10 per 10,000 requests, the rest inside
# the WAL checkpoints of a few long commits). Past the window it writes at full speed:
# under load the loop always wants the CPU, and a writer that kept yielding would fall
# behind.
_YIELD_WINDOW_S: Final = 0.05
_sched_yield: Final = getattr(os, "sched_yield", None)

_ACCOUNT_TABLES: Final[dict[str, Table[Any]]] = {
    "key": _KEYS,
    "user": _USERS,
    "team": _TEAMS,
    "customer": _CUSTOMERS,
    "organization": _ORGANIZATIONS,
    "key_budget": _KEY_BUDGETS,
}


def write_flush(
    db: sqlite3.Connection,
    grouped: dict[str, list[tuple[float, float | None, str]]],
    log_inserts: Sequence[tuple[str, list[Any]]],
) -> None:
    """One flush's transaction, on the connection's thread (``Store.apply_flush``; also
    ``bench.micro``'s store row): the spend per account table, then the spend-log INSERTs."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for kind, params in grouped.items():
            db.executemany(_ACCOUNT_TABLES[kind].set_spend, params)
        polite_until = time.perf_counter() + _YIELD_WINDOW_S
        for sql, params in log_inserts:
            db.execute(sql, params)
            if _sched_yield is not None and time.perf_counter() < polite_until:
                _sched_yield()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


_GROUP_COLUMNS: Final[dict[str, str]] = {
    "key": "key_hash",
    "team": "team_id",
    "user": "user_id",
    "model": "model",
    "end_user": "end_user",
}

_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


def _load_migrations() -> tuple[Migration, ...]:
    # The package's own folder (``importlib.resources`` would load ``zipfile`` and
    # ``tempfile`` into every gateway for a package that is never zipped).
    folder = Path(__file__).resolve().parent / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"duplicate migration version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


# Read at import, not inside the event loop: file reads would block it.
MIGRATIONS: Final = _load_migrations()


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds the write lock."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc)
    return "locked" in message or "busy" in message


def _check_page(page: int, size: int) -> None:
    if page < 1:
        raise ValueError("page must be >= 1")
    if size < 1:
        raise ValueError("page size must be >= 1")


class Store:
    """Async SQLite store. Create with `await Store.open(path)`; `await close()` when done."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._write_lock = asyncio.Lock()
        self.keys = Records(self, _KEYS)
        self.teams = Records(self, _TEAMS)
        self.users = Records(self, _USERS)
        self.budgets = Records(self, _BUDGETS)
        self.customers = Records(self, _CUSTOMERS)
        self.organizations = Records(self, _ORGANIZATIONS)
        self.key_budget_spend = Records(self, _KEY_BUDGETS)

    @classmethod
    async def open(cls, path: str, *, busy_timeout_ms: int = 100) -> Store:
        """Open (creating if needed) the database at `path` and apply pending migrations.

        `busy_timeout_ms` stays small: the flusher retries on its own schedule instead of
        parking aiosqlite's thread on a lock held by another process.
        """
        # isolation_level=None: no implicit transactions; every write transaction is
        # an explicit BEGIN IMMEDIATE ... COMMIT below.
        db = await aiosqlite.connect(path, isolation_level=None)
        store = cls(db, path)
        try:
            # A longer timeout while migrating: several workers may start at once.
            await db.execute(f"PRAGMA busy_timeout = {int(_OPEN_BUSY_TIMEOUT_MS)}")
            mode = await store._set_wal()
            if str(mode).lower() != "wal" and path != ":memory:":
                logger.warning("SQLite journal_mode is %s, not wal", mode)
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await store._migrate()
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def release_memory(self) -> None:
        """Free the connection's page cache (SQLite's ``PRAGMA shrink_memory``): run in a
        quiet spell, before the memory trimmer gives freed memory back to the system."""
        async with self._db.execute("PRAGMA shrink_memory"):
            pass

    async def _set_wal(self) -> Any:
        # Switching a fresh file to WAL while other connections open it returns SQLITE_BUSY
        # without consulting the busy handler, so retry here (bounded).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _OPEN_BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                return await self._scalar("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if not is_busy_error(exc) or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- migrations -----------------------------------------------------------------------

    async def _migrate(self) -> None:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in MIGRATIONS:
            if await self._applied(migration.version):
                continue
            async with self._write_lock:
                try:
                    # executescript COMMITs any open transaction first, so BEGIN goes inside
                    # the script; the transaction stays open for the bookkeeping row.
                    await self._db.executescript("BEGIN IMMEDIATE;\n" + migration.sql)
                    await self._db.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )
                    await self._db.execute("COMMIT")
                except sqlite3.Error:
                    await self._rollback()
                    # Another process may have applied it while we waited for the lock.
                    if await self._applied(migration.version):
                        continue
                    raise
                except BaseException:
                    await self._rollback()
                    raise
            logger.info("applied migration %04d_%s", migration.version, migration.name)

    async def _applied(self, version: int) -> bool:
        row = await self._scalar("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
        return row is not None

    async def applied_migrations(self) -> list[tuple[int, str]]:
        rows = await self._db.execute_fetchall(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    # -- helpers --------------------------------------------------------------------------

    # The primitives every query goes through (a PostgreSQL store overrides exactly these).

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        async with self._db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Sequence[Any]]:
        return await self._db.execute_fetchall(sql, params)

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self._fetchone(sql, params)
        return None if row is None else row[0]

    async def _rollback(self) -> None:
        if self._db.in_transaction:
            await self._db.execute("ROLLBACK")

    async def _admin_write(self, sql: str, params: Sequence[Any]) -> int:
        """One autocommit statement; retries briefly if another process holds the lock."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ADMIN_WRITE_RETRY_S
        delay = 0.01
        async with self._write_lock:
            while True:
                try:
                    async with self._db.execute(sql, params) as cursor:
                        return cursor.rowcount
                except sqlite3.OperationalError as exc:
                    if not is_busy_error(exc) or loop.time() + delay > deadline:
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)

    # -- records --------------------------------------------------------------------------

    async def load_all(self) -> tuple[list[KeyRow], list[TeamRow], list[UserRow]]:
        """Every key, team and user, for rebuilding the in-memory ledger at start-up."""
        return await self.keys.all(), await self.teams.all(), await self.users.all()

    # -- ledger flush ---------------------------------------------------------------------

    async def apply_flush(
        self, spend_updates: Sequence[SpendUpdate], logs: Sequence[SpendLogRow]
    ) -> None:
        """Write spend aggregates and spend logs in ONE transaction.

        Spend values are absolute and log inserts ignore known request_ids, so applying the
        same batch twice leaves the database unchanged. Raises ValueError (before touching
        the database) on an account id without a known "key:"/"user:"/"team:" prefix, and
        sqlite3.OperationalError when the write lock is not obtained within busy_timeout.
        """
        grouped: dict[str, list[tuple[float, float | None, str]]] = {}
        for account, spend, reset_at in spend_updates:
            kind, sep, ident = account.partition(":")
            if not sep or kind not in _ACCOUNT_TABLES or not ident:
                raise ValueError(f"unknown ledger account id {account!r}")
            grouped.setdefault(kind, []).append((spend, reset_at, ident))
        log_inserts = _LOGS.batch_inserts(logs)
        if not grouped and not log_inserts:
            return

        # The whole transaction runs on the connection's thread in one hop. Awaited
        # statement by statement, each waited for an event-loop turn (~100 ms apiece at
        # 1,000 connections), so the flush fell seconds behind and its queue grew by tens of
        # thousands of rows. aiosqlite's ``_execute`` is the queue its public methods use. A
        # caller cancelled meanwhile leaves ``write`` to finish: the transaction commits or
        # rolls back whole, never left open.
        run = cast("Callable[..., Awaitable[None]]", self._db._execute)
        async with self._write_lock:
            await run(write_flush, self._db._conn, grouped, log_inserts)

    # -- spend queries --------------------------------------------------------------------

    async def spend_logs(
        self,
        *,
        key_hash: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        model: str | None = None,
        start: float | None = None,
        end: float | None = None,
        page: int = 1,
        page_size: int = 100,
        request_id: str | None = None,
        end_user: str | None = None,
    ) -> list[SpendLogRow]:
        """Spend logs newest first; `start` inclusive, `end` exclusive (epoch seconds)."""
        _check_page(page, page_size)
        where, params = _where(
            dict(
                key_hash=key_hash, user_id=user_id, team_id=team_id, model=model, end_user=end_user
            ),
            start,
            end,
        )
        if request_id is not None:  # the log's id, the call id or the reply's id
            id_match = " (request_id = ? OR call_id = ? OR response_id = ?)"
            where += (" AND" if where else " WHERE") + id_match
            params += [request_id, request_id, request_id]
        # No index finds an id (call_id has none): `+start_time`, the same order, has SQLite
        # scan the table and sort the matches, not look up every row along start_time's index.
        order = "start_time" if request_id is None else "+start_time"
        rows = await self._fetchall(
            f"{_LOGS.select}{where} ORDER BY {order} DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, page_size, (page - 1) * page_size),
        )
        return [_LOGS.from_db(r) for r in rows]

    async def spend_report(
        self,
        group_by: GroupBy,
        *,
        start: float | None = None,
        end: float | None = None,
        team_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals per key/team/user/model, highest spend first.

        Each item: group, spend, requests, prompt_tokens, completion_tokens, total_tokens.
        """
        column = _GROUP_COLUMNS.get(group_by)
        if column is None:
            raise ValueError(f"group_by must be one of {sorted(_GROUP_COLUMNS)}")
        where, params = _where({"team_id": team_id}, start, end)
        rows = await self._fetchall(
            f"SELECT {column}, COALESCE(SUM(cost), 0), COUNT(*), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(total_tokens), 0), "
            "COALESCE(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(saved_cost), 0) FROM spend_logs{where} "
            f"GROUP BY {column} ORDER BY 2 DESC, 1",
            params,
        )
        return [
            {
                "group": r[0],
                "spend": round(float(r[1]), 12),  # a sum of costs, at their precision
                "requests": int(r[2]),
                "prompt_tokens": int(r[3]),
                "completion_tokens": int(r[4]),
                "total_tokens": int(r[5]),
                "cache_hits": int(r[6]),
                "cache_savings": float(r[7]),
            }
            for r in rows
        ]

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """A read-only query, for the report queries in ``store/reports.py``."""
        return list(await self._fetchall(sql, params))

    async def sum_spend_logs_by_key(self) -> dict[str | None, float]:
        rows = await self._fetchall("SELECT key_hash, SUM(cost) FROM spend_logs GROUP BY key_hash")
        return {r[0]: float(r[1]) for r in rows}

    async def count_spend_logs(self) -> int:
        return int(await self._scalar("SELECT COUNT(*) FROM spend_logs"))


class Records(Generic[RowT]):
    """Admin reads and writes of one table of records (``store.keys``, ``.teams``, ``.users``).

    ``list`` and ``count`` filter on equality; a filter given as None is left out.
    """

    def __init__(self, store: Store, table: Table[RowT]) -> None:
        self._store = store
        self._table: Table[RowT] = table

    async def upsert(self, row: RowT) -> None:
        await self._store._admin_write(self._table.upsert, self._table.to_params(row))

    async def get(self, pk: str) -> RowT | None:
        table = self._table
        row = await self._store._fetchone(f"{table.select} WHERE {table.pk} = ?", (pk,))
        return None if row is None else table.from_db(row)

    async def delete(self, pk: str) -> bool:
        return await self._store._admin_write(self._table.delete, (pk,)) > 0

    async def all(self) -> list[RowT]:
        return [self._table.from_db(r) for r in await self._store._fetchall(self._table.select)]

    async def count(self, **filters: str | None) -> int:
        where, params = _where(self._filters(filters))
        return int(
            await self._store._scalar(f"SELECT COUNT(*) FROM {self._table.name}{where}", params)
        )

    async def list(self, *, page: int = 1, size: int = 100, **filters: str | None) -> list[RowT]:
        _check_page(page, size)
        where, params = _where(self._filters(filters))
        params.extend((size, (page - 1) * size))
        rows = await self._store._fetchall(
            f"{self._table.select}{where} ORDER BY created_at, rowid LIMIT ? OFFSET ?", params
        )
        return [self._table.from_db(r) for r in rows]

    def _filters(self, filters: dict[str, str | None]) -> dict[str, str | None]:
        # Column names go into the SQL text: only the table's own are accepted.
        unknown = set(filters) - set(self._table.columns)
        if unknown:
            raise ValueError(f"{self._table.name} has no column {sorted(unknown)}")
        return filters


def _where(
    equals: dict[str, str | None], start: float | None = None, end: float | None = None
) -> tuple[str, list[Any]]:
    """WHERE clause over constant column names; every value is a bound parameter."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in equals.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start_time < ?")
        params.append(end)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
