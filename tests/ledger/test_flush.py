import asyncio
import inspect
import logging
from pathlib import Path

import aiosqlite
import pytest

from proxy.ledger.flush import Flusher
from proxy.store import KeyRow, SpendLogRow, Store, TeamRow


class FakeLedger:
    """Stands in for the in-memory ledger: hands out absolute spend per account once."""

    def __init__(self) -> None:
        self.dirty: dict[str, tuple[float, float | None]] = {}
        self.drains = 0

    def set_spend(self, account: str, spend: float, reset_at: float | None = None) -> None:
        self.dirty[account] = (spend, reset_at)

    def drain(self) -> list[tuple[str, float, float | None]]:
        self.drains += 1
        out = [(a, s, r) for a, (s, r) in self.dirty.items()]
        self.dirty.clear()
        return out


def log(request_id: str, cost: float = 1.0) -> SpendLogRow:
    return SpendLogRow(request_id=request_id, key_hash="h1", cost=cost, start_time=1.0)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "tollway.db")


@pytest.fixture
async def store(db_path: str):
    store = await Store.open(db_path)
    await store.keys.upsert(KeyRow(token_hash="h1"))
    await store.teams.upsert(TeamRow(team_id="t1"))
    try:
        yield store
    finally:
        await store.close()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll `predicate` (sync or async) until true; fail the test after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


async def test_flusher_writes_logs_and_spend_in_background(store: Store) -> None:
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=0.02)
    flusher.start()
    try:
        for i in range(3):
            flusher.enqueue(log(f"r{i}"))
        ledger.set_spend("key:h1", 3.0, 99.0)

        async def written() -> bool:
            key = await store.keys.get("h1")
            return await store.count_spend_logs() == 3 and key is not None and key.spend == 3.0

        await wait_until(written)
        stats = flusher.stats()
        assert (stats.queued, stats.flushed, stats.failures, stats.overflow) == (0, 3, 0, 0)
        assert stats.last_flush_ms is not None
        assert (await store.keys.get("h1")).budget_reset_at == 99.0
    finally:
        assert await flusher.stop()


async def test_stop_flushes_the_remainder(store: Store) -> None:
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=60.0)
    flusher.start()
    flusher.enqueue(log("r1"))
    flusher.enqueue(log("r2"))
    ledger.set_spend("team:t1", 2.0)
    await asyncio.sleep(0)
    assert await store.count_spend_logs() == 0  # the 60 s interval has not elapsed

    assert await flusher.stop() is True

    assert await store.count_spend_logs() == 2
    assert (await store.teams.get("t1")).spend == 2.0
    assert flusher.stats().queued == 0


async def test_flusher_keeps_and_retries_while_another_connection_holds_the_lock(
    store: Store, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.flush")
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=0.02)
    flusher.start()
    try:
        async with aiosqlite.connect(db_path, isolation_level=None) as other:
            await other.execute("BEGIN IMMEDIATE")
            flusher.enqueue(log("r1"))
            ledger.set_spend("key:h1", 1.0)
            await wait_until(lambda: flusher.stats().failures >= 1)
            # Newer absolute spend arrives while the first batch is stuck: newest wins.
            flusher.enqueue(log("r2"))
            ledger.set_spend("key:h1", 2.0)
            await asyncio.sleep(1.0)
            # WAL readers are not blocked by the writer: nothing has been committed.
            assert await store.count_spend_logs() == 0
            assert (await store.keys.get("h1")).spend == 0.0
            assert flusher.stats().queued == 2
            failures = flusher.stats().failures
            assert failures >= 2
            await other.execute("COMMIT")

        async def written() -> bool:
            return await store.count_spend_logs() == 2

        await wait_until(written)
    finally:
        assert await flusher.stop()

    assert await store.sum_spend_logs_by_key() == {"h1": 2.0}  # each row exactly once
    assert (await store.keys.get("h1")).spend == 2.0
    stats = flusher.stats()
    assert (stats.queued, stats.flushed, stats.overflow) == (0, 2, 0)
    warnings = [r for r in caplog.records if r.name == "tollway.flush" and r.levelno == 30]
    assert len(warnings) == 1  # one warning per failure streak, not per attempt
    assert "database is locked" in warnings[0].getMessage()


async def test_stop_gives_up_after_its_deadline_and_keeps_the_rows(
    store: Store, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tollway.flush")
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=60.0)
    flusher.start()
    async with aiosqlite.connect(db_path, isolation_level=None) as other:
        await other.execute("BEGIN IMMEDIATE")
        flusher.enqueue(log("r1"))
        ledger.set_spend("key:h1", 5.0)
        assert await flusher.stop(timeout_s=0.3) is False
        assert flusher.stats().queued == 1
        assert flusher.stats().pending_accounts == 1
        await other.execute("COMMIT")
    assert any("gave up" in r.getMessage() for r in caplog.records)

    assert await flusher.flush() is True
    assert await store.count_spend_logs() == 1
    assert (await store.keys.get("h1")).spend == 5.0


async def test_overflow_is_counted_and_rows_are_kept(store: Store) -> None:
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=60.0, max_queue=2)
    flusher.start()
    try:
        for i in range(5):
            flusher.enqueue(log(f"r{i}"))
        assert flusher.stats().overflow == 3
        assert flusher.stats().queued == 5

        # Overflow wakes the writer without waiting for the 60 s interval.
        async def written() -> bool:
            return await store.count_spend_logs() == 5

        await wait_until(written)
    finally:
        assert await flusher.stop()
    assert flusher.stats().flushed == 5


async def test_replayed_batch_is_not_double_counted(store: Store) -> None:
    ledger = FakeLedger()
    flusher = Flusher(store, ledger.drain, interval_s=60.0)
    flusher.enqueue(log("r1", cost=2.0))
    assert await flusher.flush()
    # The same request logged again (e.g. a retry after an ambiguous commit).
    flusher.enqueue(log("r1", cost=2.0))
    assert await flusher.flush()
    assert await store.sum_spend_logs_by_key() == {"h1": 2.0}


async def test_a_failing_drain_does_not_kill_the_writer(store: Store) -> None:
    ledger = FakeLedger()
    broken = True

    def drain() -> list[tuple[str, float, float | None]]:
        if broken:
            raise RuntimeError("ledger bug")
        return ledger.drain()

    flusher = Flusher(store, drain, interval_s=0.01)
    flusher.start()
    try:
        flusher.enqueue(log("r1"))
        await wait_until(lambda: flusher.stats().failures >= 2)
        broken = False
        ledger.set_spend("key:h1", 1.0)
        await wait_until(lambda: flusher.stats().flushed == 1)
    finally:
        assert await flusher.stop()
    assert await store.count_spend_logs() == 1
    assert (await store.keys.get("h1")).spend == 1.0


async def test_invalid_settings_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError):
        Flusher(store, FakeLedger().drain, interval_s=0)
    with pytest.raises(ValueError):
        Flusher(store, FakeLedger().drain, max_queue=0)
