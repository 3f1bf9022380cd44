"""The ledger's SQLite writer: one long-lived task that persists spend and spend logs.

The request path only calls `Flusher.enqueue` (synchronous, never blocks, never drops).
Every `interval_s` the writer task drains the ledger's spend aggregates and the buffered
spend logs and writes both in one `Store.apply_flush` transaction.

Failure handling: when a flush fails (typically `database is locked` because another
process holds the write lock) the batch is kept and retried with exponential backoff capped
at `max(1 s, interval_s)`. Spend values are absolute, so newer updates replace older ones for
the same account while waiting; spend-log inserts are idempotent on request_id, so a retry
of a batch that did commit before an error surfaced cannot double-count.

Backpressure: `max_queue` is a soft bound. A row that arrives while the buffer already holds
`max_queue` rows is still kept (dropping it would unbill a request) but counted in `overflow`,
and wakes the writer for an immediate flush instead of waiting for the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

import msgspec

from proxy.store.sqlite import SpendLogRow, SpendUpdate, Store, is_busy_error

logger = logging.getLogger("tollway.flush")

_MAX_BACKOFF_S = 1.0


class FlushStats(msgspec.Struct, frozen=True):
    queued: int
    """Spend-log rows not yet committed (buffered + a retained failed batch)."""
    pending_accounts: int
    """Accounts whose latest spend has been drained from the ledger but not committed."""
    flushed: int
    """Spend-log rows committed since start."""
    failures: int
    overflow: int
    last_flush_ms: float | None
    """Duration of the last successful flush."""


class Flusher:
    """Batches spend logs and ledger spend into periodic SQLite transactions."""

    def __init__(
        self,
        store: Store,
        drain_spend: Callable[[], list[SpendUpdate]],
        *,
        interval_s: float = 0.2,
        max_queue: int = 100_000,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self._store = store
        self._drain_spend = drain_spend
        self._interval_s = interval_s
        self._max_queue = max_queue
        # Told once per failure streak (alerting); it must not raise or block.
        self._on_failure = on_failure
        self._max_backoff_s = max(_MAX_BACKOFF_S, interval_s)
        self._buffer: deque[SpendLogRow] = deque()
        # The batch being written (or retained after a failure): logs in arrival order and
        # the newest absolute spend per account.
        self._batch_logs: list[SpendLogRow] = []
        self._batch_spend: dict[str, tuple[float, float | None]] = {}
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        self._streak = 0
        self.flushed = 0
        self.failures = 0
        self.overflow = 0
        self.last_flush_ms: float | None = None

    def enqueue(self, row: SpendLogRow) -> None:
        """Buffer one spend-log row. Synchronous and non-blocking; never drops the row."""
        if len(self._buffer) + len(self._batch_logs) >= self._max_queue:
            self.overflow += 1
            if not self._failing:
                self._wake.set()
        self._buffer.append(row)

    def stats(self) -> FlushStats:
        return FlushStats(
            queued=len(self._buffer) + len(self._batch_logs),
            pending_accounts=len(self._batch_spend),
            flushed=self.flushed,
            failures=self.failures,
            overflow=self.overflow,
            last_flush_ms=self.last_flush_ms,
        )

    def start(self) -> None:
        """Start the writer task (call from inside the running event loop)."""
        if self._task is not None:
            raise RuntimeError("Flusher already started")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollway-flusher")

    async def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the writer after a final flush, retrying for up to `timeout_s`.

        Returns True when everything was written. On False the unwritten rows stay buffered
        (and are reported by `stats()`); the caller decides what else to do.
        """
        task, self._task = self._task, None
        if task is not None:
            # Signal rather than cancel: cancelling mid-transaction would leave the
            # connection's transaction state to clean up from a cancelled task.
            self._stopping = True
            self._wake.set()
            await task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = min(0.05, self._interval_s)
        while not await self.flush():
            if loop.time() + delay > deadline:
                stats = self.stats()
                logger.error(
                    "final flush gave up after %.1f s: %d spend logs and %d account totals "
                    "not written",
                    timeout_s,
                    stats.queued,
                    stats.pending_accounts,
                )
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)
        return True

    async def flush(self) -> bool:
        """One flush attempt now. True if everything drained so far is committed."""
        async with self._flush_lock:
            started = time.perf_counter()
            try:
                # Taking the batch is synchronous: no await between draining and keeping.
                for account, spend, reset_at in self._drain_spend():
                    self._batch_spend[account] = (spend, reset_at)
                if self._buffer:
                    self._batch_logs.extend(self._buffer)
                    self._buffer.clear()
                if not self._batch_logs and not self._batch_spend:
                    return True
                updates = [(a, s, r) for a, (s, r) in self._batch_spend.items()]
                await self._store.apply_flush(updates, self._batch_logs)
            except Exception as exc:
                self._record_failure(exc)
                return False
            self.last_flush_ms = (time.perf_counter() - started) * 1000.0
            self.flushed += len(self._batch_logs)
            self._batch_logs = []
            self._batch_spend.clear()
            if self._failing:
                self._failing = False
                logger.info("ledger flush recovered after %d failed attempts", self._streak)
                self._streak = 0
            return True

    def _record_failure(self, exc: Exception) -> None:
        self.failures += 1
        self._streak += 1
        if self._failing:
            return
        self._failing = True
        # One warning per failure streak; the message names the error class and SQLite's
        # message only (no row values, no keys).
        logger.warning(
            "ledger flush failed (%s: %s); keeping %d spend logs and %d account totals, retrying%s",
            type(exc).__name__,
            exc,
            len(self._batch_logs) + len(self._buffer),
            len(self._batch_spend),
            "" if is_busy_error(exc) else " (not a lock timeout: check the database)",
        )
        if self._on_failure is not None:
            self._on_failure(exc)

    async def _run(self) -> None:
        delay = self._interval_s
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._stopping:
                break  # stop() does the final flush with its own deadline
            if await self.flush():
                delay = self._interval_s
            else:
                delay = min(max(delay * 2, self._interval_s), self._max_backoff_s)
