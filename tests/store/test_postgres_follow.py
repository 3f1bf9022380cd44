"""The PostgreSQL follower in-process: changes are applied in order, and a lost listening
connection is reopened and followed by a full re-read (changes made meanwhile are not lost)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg

from proxy.directory import Directory
from proxy.ledger import Ledger
from proxy.propagation.postgres import PostgresFollower
from proxy.store import KeyRow, TeamRow
from proxy.store.postgres import PostgresStore


async def within(limit_s: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"not true within {limit_s} s"
        await asyncio.sleep(0.01)


async def test_changes_are_followed_and_survive_a_lost_listening_connection(pg_url: str) -> None:
    writer = await PostgresStore.connect(pg_url, pool_size=2)
    reader = await PostgresStore.connect(pg_url, pool_size=2)
    directory = Directory(Ledger(time.time), reader)
    source = PostgresFollower(reader, directory)
    try:
        await writer.keys.upsert(KeyRow(token_hash="before"))
        await source.open()
        await directory.load()
        source.start()
        assert set(directory.keys) == {"before"}

        # Create, then block and delete in quick succession: applied in order, never resurrected.
        await writer.keys.upsert(KeyRow(token_hash="k1", rpm_limit=5))
        await writer.teams.upsert(TeamRow(team_id="t1"))
        await within(1, lambda: "k1" in directory.keys and "t1" in directory.teams)
        await writer.keys.upsert(KeyRow(token_hash="k1", blocked=True))
        await writer.keys.delete("before")
        await within(1, lambda: directory.keys["k1"].blocked and "before" not in directory.keys)

        # The listening connection dies; meanwhile k1 is deleted and k2 created.
        admin = await asyncpg.connect(pg_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
            assert killed == 1
        finally:
            await admin.close()
        await writer.keys.delete("k1")
        await writer.keys.upsert(KeyRow(token_hash="k2"))
        await within(3, lambda: set(directory.keys) == {"k2"})
        # And the new connection follows later changes again.
        await writer.keys.upsert(KeyRow(token_hash="k3"))
        await within(1, lambda: "k3" in directory.keys)
    finally:
        await source.stop()
        await reader.close()
        await writer.close()
