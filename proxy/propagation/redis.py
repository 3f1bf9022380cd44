"""Redis pub/sub for several workers sharing one SQLite file: each admin write is published
(table and id only) and every worker, the writer included, re-reads the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..directory import Directory
from ..store import Store
from .follow import Change, Follower, encode_change

log = logging.getLogger("tollway.propagation")

CHANNEL: Final = "tollway:records"
_PUBLISH_TIMEOUT_S: Final = 2.0


class RedisFollower:
    def __init__(self, url: str, store: Store, directory: Directory) -> None:
        # No CLIENT SETINFO (a package-metadata read per connection); a subscription that
        # goes quiet is checked with a PING every 10 s, so a dead connection is noticed.
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, health_check_interval=10, driver_info=None
        )
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self.follower = Follower(store, directory, self.open, (RedisError,))
        directory.announce = self.publish

    async def open(self) -> None:
        await self._close_reader()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._pubsub = pubsub
        self._reader = asyncio.get_running_loop().create_task(self._read(pubsub))

    def start(self) -> None:
        self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()
        await self.close()

    async def close(self) -> None:
        for task in list(self._publishing):
            with contextlib.suppress(Exception):
                await task
        await self._close_reader()
        await self._client.aclose()

    async def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self.follower.announce(message["data"])
        except (RedisError, OSError) as exc:
            log.warning("record subscription lost (%s)", type(exc).__name__)
        self.follower.lost()

    def publish(self, table: str, record_id: str) -> None:
        """Called by the directory after each admin write; never blocks the caller."""
        payload = encode_change(Change(table=table, id=record_id))
        task = asyncio.get_running_loop().create_task(self._publish(payload))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, payload: bytes) -> None:
        try:
            await asyncio.wait_for(self._client.publish(CHANNEL, payload), _PUBLISH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            # The other workers will not hear of it until their next re-read.
            log.warning("could not announce a record change (%s)", type(exc).__name__)
