"""PostgreSQL persistence for several replicas: the SQLite ``Store``'s interface over asyncpg.

``PostgresStore`` is a ``Store`` whose four query primitives (``_fetchone``, ``_fetchall``,
``_scalar``, ``_admin_write``) run on a bounded asyncpg pool; every query written once for
SQLite (the record tables, spend logs, spend reports) runs here unchanged: ``?`` placeholders
become ``$1, $2, ...`` and ``rowid`` becomes the ``seq`` identity column (``to_postgres``).

What differs is written here:
- migrations come from ``migrations_pg/`` (same version numbers as ``migrations/``), applied
  under an advisory lock so replicas starting together apply each one once;
- ``apply_flush`` writes spend as increments, never absolute totals: the spend-log rows are
  inserted with ``ON CONFLICT (request_id) DO NOTHING`` and only the rows actually inserted
  add their cost to their key, user, team, end user and organization (and the key's
  reusable budget), in the same transaction. A replayed batch
  inserts nothing and adds nothing; two replicas flushing at once both add.
- admin changes are announced by a trigger (``NOTIFY tollway_records``) that
  ``proxy.propagation`` listens to.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import aiosqlite
import asyncpg

from .sqlite import (
    _ACCOUNT_TABLES,
    _LOGS,
    _MIGRATION_NAME,
    Migration,
    SpendLogRow,
    SpendUpdate,
    Store,
)

logger = logging.getLogger("tollway.store")

CHANNEL: Final = "tollway_records"
"""The NOTIFY channel the record triggers announce admin changes on."""

_MIGRATION_LOCK: Final = 0x70_11_3A_11  # pg_advisory_lock key: "tollway migrations"
_ACQUIRE_TIMEOUT_S: Final = 10.0
_COMMAND_TIMEOUT_S: Final = 30.0
_PLACEHOLDER = re.compile(r"\?")
_ROWID = re.compile(r"\browid\b")
# SQLite's UTC day of an epoch column (the reports), as PostgreSQL writes it.
_DAY = re.compile(r"strftime\('%Y-%m-%d', (\w+), 'unixepoch'\)")
_PG_DAY = r"to_char(to_timestamp(\1) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
# Array types of the columns a spend-log batch is inserted through ``unnest``.
_ARRAY_TYPES: Final = {
    "text": "text[]",
    "int8": "int8[]",
    "int4": "int4[]",
    "float8": "float8[]",
    "bool": "bool[]",
}


def redact(url: str) -> str:
    """The URL without its password, for logs and ``Store.path``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """SQLite-flavoured SQL (``?`` parameters, ``rowid``, ``strftime`` of a UTC day) as
    PostgreSQL SQL.

    Every statement of the stores is built from constant text with bound values, so a ``?``
    is always a parameter, never part of a literal.
    """
    numbers = itertools.count(1)
    sql = _DAY.sub(_PG_DAY, _ROWID.sub("seq", sql))
    return _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql)


def _load_migrations() -> tuple[Migration, ...]:
    folder = resources.files("proxy.store").joinpath("migrations_pg")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"duplicate PostgreSQL migration version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


# Read at import (only when PostgreSQL is configured), not inside the event loop.
PG_MIGRATIONS: Final = _load_migrations()


def _rowcount(status: str) -> int:
    """Rows touched, from a command tag such as ``INSERT 0 1`` or ``DELETE 3``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresStore(Store):
    """Create with ``await PostgresStore.connect(url, pool_size=...)``; ``await close()``."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        # Store builds its record tables over the primitives below; the SQLite connection
        # it would hold is never used here (every method that touches it is overridden).
        super().__init__(cast(aiosqlite.Connection, None), redact(url))
        self.url = url
        self._pool = pool
        self._insert_logs = ""

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 10) -> PostgresStore:
        """Open a pool of at most ``pool_size`` connections and apply pending migrations."""
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size,
            command_timeout=_COMMAND_TIMEOUT_S,
            timeout=_ACQUIRE_TIMEOUT_S,
        )
        store = cls(pool, url)
        try:
            await store._migrate()
            store._insert_logs = await store._build_log_insert()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self._pool.close()

    async def release_memory(self) -> None:
        """Nothing to release: PostgreSQL caches pages in its own processes."""

    # -- migrations -----------------------------------------------------------------------

    async def _migrate(self) -> None:
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
            # Session-level lock: held across the migrations' own transactions.
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for migration in PG_MIGRATIONS:
                    if migration.version in applied:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) "
                            "VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            time.time(),
                        )
                    logger.info(
                        "applied PostgreSQL migration %04d_%s", migration.version, migration.name
                    )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def applied_migrations(self) -> list[tuple[int, str]]:
        rows = await self._fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(int(r[0]), str(r[1])) for r in rows]

    async def _build_log_insert(self) -> str:
        """``INSERT ... SELECT FROM unnest(...)`` over the spend-log columns, typed from the
        catalog, so a batch is one statement and reports which request ids were new."""
        rows = await self._fetchall(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'spend_logs'"
        )
        types = {str(r[0]): str(r[1]) for r in rows}
        missing = [c for c in _LOGS.columns if c not in types]
        if missing:
            raise RuntimeError(f"spend_logs in PostgreSQL lacks columns {missing}")
        arrays = ", ".join(
            f"${i}::{_ARRAY_TYPES.get(types[c], 'text[]')}"
            for i, c in enumerate(_LOGS.columns, start=1)
        )
        return (
            f"INSERT INTO spend_logs ({', '.join(_LOGS.columns)}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (request_id) DO NOTHING "
            "RETURNING key_hash, user_id, team_id, end_user, organization_id, cost"
        )

    # -- the primitives -------------------------------------------------------------------

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
            row = await conn.fetchrow(to_postgres(sql), *params)
        return None if row is None else tuple(row)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Sequence[Any]]:
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(to_postgres(sql), *params)
        return [tuple(r) for r in rows]

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
            return await conn.fetchval(to_postgres(sql), *params)

    async def _admin_write(self, sql: str, params: Sequence[Any]) -> int:
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
            return _rowcount(await conn.execute(to_postgres(sql), *params))

    async def _rollback(self) -> None:
        """Transactions here are scoped by ``conn.transaction()``; nothing is left open."""

    async def _set_wal(self) -> Any:
        raise NotImplementedError("journal modes are SQLite's")

    # -- ledger flush ---------------------------------------------------------------------

    async def apply_flush(
        self, spend_updates: Sequence[SpendUpdate], logs: Sequence[SpendLogRow]
    ) -> None:
        """Spend-log rows and the spend they add, in ONE transaction, as increments.

        From ``spend_updates`` only budget resets are taken (the absolute spend is this
        replica's view, which another replica's flush would overwrite): a reset boundary later
        than the stored one moves it forward and, when the stored boundary has passed, starts
        spend again at 0; a replayed or second replica's reset of the same boundary is a no-op.
        """
        resets: dict[str, list[tuple[str, float]]] = {}
        customers: set[str] = set()
        key_budgets: dict[str, tuple[float, float | None]] = {}
        for account, spend, reset_at in spend_updates:
            kind, sep, ident = account.partition(":")
            if not sep or kind not in _ACCOUNT_TABLES or not ident:
                raise ValueError(f"unknown ledger account id {account!r}")
            if reset_at is not None:
                resets.setdefault(kind, []).append((ident, reset_at))
            if kind == "customer":
                customers.add(ident)
            elif kind == "key_budget":
                key_budgets[ident] = (spend, reset_at)
        columns: list[list[Any]] = [[] for _ in _LOGS.columns]
        for row in logs:
            for column, value in zip(columns, _LOGS.to_params(row), strict=True):
                column.append(value)
        if not resets and not logs and not customers and not key_budgets:
            return
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            now = time.time()
            for kind, pairs in resets.items():
                table = _ACCOUNT_TABLES[kind]
                await conn.execute(
                    f"UPDATE {table.name} AS t SET budget_reset_at = d.at, spend = CASE "
                    "WHEN t.budget_reset_at <= $3 THEN 0 ELSE t.spend END "
                    "FROM unnest($1::text[], $2::float8[]) AS d(id, at) "
                    f"WHERE t.{table.pk} = d.id "
                    "AND (t.budget_reset_at IS NULL OR t.budget_reset_at < d.at)",
                    [p[0] for p in pairs],
                    [p[1] for p in pairs],
                    now,
                )
            inserted = await conn.fetch(self._insert_logs, *columns)
            added: dict[str, dict[str, float]] = {kind: {} for kind in _ACCOUNT_TABLES}
            for key_hash, user_id, team_id, end_user, organization_id, cost in inserted:
                if not cost:
                    continue
                for kind, ident in (
                    ("key", key_hash),
                    ("user", user_id),
                    ("team", team_id),
                    ("customer", end_user),
                    ("organization", organization_id),
                ):
                    if ident is not None:
                        added[kind][ident] = added[kind].get(ident, 0.0) + float(cost)
            # A key's spend on its reusable budget ("<key_hash>:<budget_id>", in this batch
            # whenever the key spent on it): what the key's inserted rows add.
            for ident in key_budgets:
                amount = added["key"].get(ident.partition(":")[0])
                if amount is not None:
                    added["key_budget"][ident] = amount
            if customers:
                # An end user the ledger tracks without a record gets one (as with SQLite).
                await conn.execute(
                    "INSERT INTO end_users (user_id) SELECT unnest($1::text[]) "
                    "ON CONFLICT (user_id) DO NOTHING",
                    sorted(customers),
                )
            for kind, amounts in added.items():
                if not amounts:
                    continue
                table = _ACCOUNT_TABLES[kind]
                await conn.execute(
                    f"UPDATE {table.name} AS t SET spend = t.spend + d.amount "
                    "FROM unnest($1::text[], $2::float8[]) AS d(id, amount) "
                    f"WHERE t.{table.pk} = d.id",
                    list(amounts),
                    list(amounts.values()),
                )
            if key_budgets:
                # Its first flush makes the row from the ledger's figure, which already holds
                # this batch (the increment above found no row): nothing counts twice.
                await conn.execute(
                    "INSERT INTO key_budget_spend (account, spend, budget_reset_at) "
                    "SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[]) "
                    "ON CONFLICT (account) DO NOTHING",
                    list(key_budgets),
                    [spend for spend, _ in key_budgets.values()],
                    [reset_at for _, reset_at in key_budgets.values()],
                )

    # -- change notifications -------------------------------------------------------------

    async def listen(self) -> asyncpg.Connection:
        """A dedicated connection (outside the pool) for ``LISTEN``; the caller closes it."""
        conn: asyncpg.Connection = await asyncpg.connect(self.url, timeout=_ACQUIRE_TIMEOUT_S)
        return conn
