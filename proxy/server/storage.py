"""Start-up of the store behind the directory, and how admin changes reach other processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..directory import Directory
from ..store import Store
from ..store.open import is_postgres_url, open_store
from .settings import Settings

if TYPE_CHECKING:
    from ..propagation.follow import Source


async def open_directory(settings: Settings, directory: Directory) -> tuple[Store, Source | None]:
    """The configured store, attached to ``directory`` and loaded into it (and the ledger)
    before the first request is admitted, and what follows changes made elsewhere: with
    PostgreSQL, LISTEN/NOTIFY; with SQLite shared by several workers, Redis pub/sub; else
    nothing. The source returned is to be stopped before the store closes."""
    store = await open_store(settings.database_url, settings.db, pool_size=settings.db_pool_size)
    directory.attach(store)
    source: Source | None = None
    try:
        # Imported only when configured. Opened before loading: a change made while the
        # directory loads is applied after it.
        if is_postgres_url(settings.database_url):
            from ..propagation.postgres import PostgresFollower
            from ..store.postgres import PostgresStore

            assert isinstance(store, PostgresStore)
            source = PostgresFollower(store, directory)
        elif settings.redis_url and settings.workers > 1:
            from ..propagation.redis import RedisFollower

            source = RedisFollower(settings.redis_url, store, directory)
        if source is not None:
            await source.open()
        await directory.load()
    except BaseException:
        if source is not None:
            await source.stop()
        await store.close()
        raise
    if source is not None:
        source.start()
    return store, source
