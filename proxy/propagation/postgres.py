"""PostgreSQL ``LISTEN`` on the channel the store's record triggers ``NOTIFY`` at commit."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..directory import Directory
from ..store.postgres import CHANNEL, PostgresStore
from .follow import Follower


class PostgresFollower:
    """A dedicated listening connection (outside the pool) feeding a ``Follower``."""

    def __init__(self, store: PostgresStore, directory: Directory) -> None:
        self._store = store
        self._conn: asyncpg.Connection | None = None
        self.follower = Follower(
            store, directory, self.open, (asyncpg.PostgresError, asyncpg.InterfaceError)
        )

    async def open(self) -> None:
        await self.close()
        conn = await self._store.listen()
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            await conn.close(timeout=1)
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def start(self) -> None:
        self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()
        await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._on_lost)
            await conn.close(timeout=2)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.follower.announce(str(payload))

    def _on_lost(self, conn: Any) -> None:
        self.follower.lost()
