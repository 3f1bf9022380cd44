"""Give freed heap memory back to the system once a burst of load is over.

After 1,000 connections, every request's buffers and objects are freed, but glibc keeps the
freed pages of its heap for reuse: the resident set stays where the burst took it (about
30 MB above idle after ``make bench``'s 1,000-user rows). ``malloc_trim(0)`` returns the free
pages (glibc ≥ 2.8 also releases free pages inside the heap, not only at its top).

Every ``TOLLWAY_MEMORY_TRIM_S`` seconds (default 10; 0 turns it off) the trimmer looks at the
number of requests served since its last look; once the rate has fallen from a burst (or
traffic stopped: that is seen every 2 s, after a burst of at least 1,000 requests since the
last trim), it runs ``malloc_trim(0)`` on a worker thread (ctypes releases the GIL, so
the event loop keeps serving while glibc walks its heap). At most one trim per quiet spell, plus
one after the tick that closes the idle upstream connections a burst left (they are swept on
every tick once idle for 4 s, which may be after the burst's trim): no trim while the load is
steady. Without glibc (musl, macOS) it is off.

Before a trim, one full garbage collection runs on the loop. A closed connection, client or
upstream, is a reference cycle (its protocol holds its ``httptools`` parser, which holds the
protocol back), so only the collector frees it. Under load that happens within 10,000 new
objects (``server/app.py``'s threshold), but once traffic stops nothing is allocated and the
collector never runs: after ``make bench``'s 1,000-connection rows ~800 closed connections
(1.4 MB of live objects) stayed until the next burst. The collection walks the ~10,000
tracked objects that are left in 3-20 ms, once per quiet spell.

And before it, the store's caches are released (``Store.release_memory``: SQLite's
``PRAGMA shrink_memory``). A burst of spend-log writes fills the connection's page cache to
its 2 MB, allocated on the database thread; once freed, the trim gives it back. The next
query reads its pages from the OS's file cache again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# From closing the idle upstream connections to the collection that frees them.
_SETTLE_S = 0.05
# Traffic that stops is noticed within this many seconds, not at the interval's end (up to
# two intervals after the burst); a burst is at least this many requests.
_LOOK_S = 2.0
_BURST = 1000


def _malloc_trim() -> Callable[[int], int] | None:
    # The process's own symbols (libc is linked into every CPython): no library search,
    # which on Linux runs ``ldconfig`` in a subprocess.
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class Trimmer:
    """Runs ``malloc_trim`` when the request rate drops after a burst."""

    def __init__(
        self,
        served: Callable[[], int],
        interval_s: float,
        before: Callable[[], int] | None = None,
        release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._served = served
        # Run before each trim: gives back what a component caches for reuse (SQLite's page
        # cache, which a burst of spend-log writes fills to its 2 MB).
        self._release = release
        # Run on the loop every tick, before a trim: releases what only a quiet spell frees
        # (the upstream connections a burst opened) and says how many it released; a tick
        # that released any trims too.
        self._before = before
        self.interval_s = interval_s
        self._trim = _malloc_trim() if interval_s > 0 else None
        self._task: asyncio.Task[None] | None = None
        self._last = 0  # the request count at the last tick
        self._looked = 0  # ... at the last look (``stopped``)
        self._at_trim = 0  # ... when the last trim was decided
        self._peak = 0  # the most requests in one tick since the last trim
        self.trims = 0

    def start(self) -> None:
        if self._trim is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = self._looked = self._at_trim = self._served()
        step = min(self.interval_s, _LOOK_S)
        looks = max(1, round(self.interval_s / step))
        count = 0
        while True:
            await asyncio.sleep(step)
            served = self._served()
            count += 1
            due = self.stopped(served)
            released = 0
            if count == looks:  # the interval's tick: the rate's check and the sweep
                count = 0
                due = self.due(served) or due
                released = self._before() if self._before is not None else 0
            if due or released:
                if released:
                    # Closed transports drop their protocols in a later loop turn.
                    await asyncio.sleep(_SETTLE_S)
                if self._release is not None:
                    try:
                        await self._release()
                    except Exception as exc:  # the trim itself still runs
                        log.warning("memory release before a trim failed: %s", type(exc).__name__)
                gc.collect()
                self._at_trim = served
                await loop.run_in_executor(None, self.trim_now)

    def stopped(self, served: int) -> bool:
        """One look (every ``_LOOK_S``) with the request count ``served``: True when traffic
        stopped after a burst since the last trim (no request since the last look, at least
        ``_BURST`` since the last trim), so the trim need not wait for the interval's end."""
        quiet = served == self._looked
        self._looked = served
        if quiet and served - self._at_trim >= _BURST:
            self._at_trim = served
            self._peak = 0  # the interval's own check must not trim this fall again
            return True
        return False

    def due(self, served: int) -> bool:
        """One tick with the request count ``served``: True when a trim is due (the rate
        fell under half of the burst's since the last trim, or traffic stopped)."""
        rate = served - self._last
        self._last = served
        if rate >= self._peak:
            self._peak = rate
            return False
        if self._peak > 0 and rate < self._peak / 2:
            self._peak = 0  # the next trim waits for the next burst to fall
            return True
        return False

    def trim_now(self) -> None:
        if self._trim is not None:
            self._trim(0)
            self.trims += 1
