"""Which store a gateway uses: SQLite (the embedded default) or PostgreSQL (shared).

``database_url`` (``general_settings.database_url``, ``DATABASE_URL`` or
``TOLLWAY_DATABASE_URL``) starting with ``postgresql://`` or ``postgres://`` selects
PostgreSQL; asyncpg is imported only then. Anything else uses the SQLite file ``sqlite_path``.
"""

from __future__ import annotations

from .sqlite import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(POSTGRES_SCHEMES)


async def open_store(database_url: str | None, sqlite_path: str, *, pool_size: int = 10) -> Store:
    """The configured store, migrated and ready."""
    if is_postgres_url(database_url):
        from .postgres import PostgresStore

        assert database_url is not None
        return await PostgresStore.connect(database_url, pool_size=pool_size)
    return await Store.open(sqlite_path)
