"""The follower: one task applying announced record changes, in arrival order.

Ordering: announcements are handled one at a time, each by reading the record's current row,
so a late read can never resurrect a record deleted after it. When a source loses its
connection it says so (``lost``); the follower reopens it with backoff and then re-reads every
record, since changes made meanwhile were announced to nobody. None of this runs on the
request path: requests only read the directory's dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

import msgspec

from ..directory import Directory
from ..store import KeyRow, Records, Store, TeamRow, UserRow

log = logging.getLogger("tollway.propagation")

R = TypeVar("R", KeyRow, TeamRow, UserRow)
_MAX_BACKOFF_S: Final = 5.0


class Change(msgspec.Struct, frozen=True):
    """One announcement: ``{"table": "keys", "id": "<primary key>", "op": "update"}``."""

    table: str
    id: str
    op: str = "update"


encode_change = msgspec.json.Encoder().encode
_decode_change = msgspec.json.Decoder(Change).decode
_RESYNC: Final = Change(table="*", id="*", op="resync")
_LOST: Final = Change(table="*", id="*", op="lost")


class Source(Protocol):
    """Where announcements come from: opened before the directory loads, then ``start``."""

    follower: Follower

    async def open(self) -> None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Follower:
    """Applies announced changes to ``directory``; a source calls ``announce`` and ``lost``."""

    def __init__(
        self,
        store: Store,
        directory: Directory,
        reopen: Callable[[], Awaitable[None]],
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self._store = store
        self._directory = directory
        # Reopens the source after ``lost``; raises one of ``errors`` while it cannot.
        self._reopen = reopen
        self._errors: tuple[type[BaseException], ...] = (OSError, TimeoutError, *errors)
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    def announce(self, payload: str | bytes) -> None:
        try:
            self._queue.put_nowait(_decode_change(payload))
        except msgspec.DecodeError:  # ValidationError included
            log.warning("ignored a malformed record announcement")

    def lost(self) -> None:
        self._queue.put_nowait(_LOST)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollway-follow")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                if change is _LOST:
                    await self._reconnect()
                elif change is _RESYNC:
                    await self._resync()
                else:
                    await self._apply(change)
            except self._errors as exc:
                # The store is unreachable: try again from a full re-read.
                log.warning("record propagation paused (%s); re-reading", type(exc).__name__)
                await asyncio.sleep(0.5)
                self._queue.put_nowait(_RESYNC)

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._reopen()
            except self._errors as exc:
                log.warning("record listener cannot reconnect (%s)", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
                continue
            log.info("record listener reconnected; re-reading every record")
            self._queue.put_nowait(_RESYNC)
            return

    async def _apply(self, change: Change) -> None:
        store, directory = self._store, self._directory
        if change.table == "keys":
            await self._refresh(store.keys, directory.keys, change.id)
        elif change.table == "teams":
            await self._refresh(store.teams, directory.teams, change.id)
        elif change.table == "users":
            await self._refresh(store.users, directory.users, change.id)
        else:
            return
        self.applied += 1

    async def _refresh(self, table: Records[R], held: dict[str, R], record_id: str) -> None:
        self._directory.apply_change(held, record_id, await table.get(record_id))

    async def _resync(self) -> None:
        keys, teams, users = await self._store.load_all()
        directory = self._directory
        self._replace_all(directory.keys, {row.token_hash: row for row in keys})
        self._replace_all(directory.teams, {row.team_id: row for row in teams})
        self._replace_all(directory.users, {row.user_id: row for row in users})

    def _replace_all(self, held: dict[str, R], stored: dict[str, R]) -> None:
        for record_id in [r for r in held if r not in stored]:
            self._directory.apply_change(held, record_id, None)
        for record_id, row in stored.items():
            self._directory.apply_change(held, record_id, row)
