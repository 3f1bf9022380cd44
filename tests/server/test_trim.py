"""``TOLLWAY_MEMORY_TRIM_S``: freed heap memory goes back to the system after a burst, once,
and nothing runs while the load is steady or when it is off."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from collections.abc import Iterator

import pytest

from proxy.server.settings import SettingsError, resolve
from proxy.server.trim import Trimmer
from proxy.upstream import lean


async def _trimmed(trimmer: Trimmer, trims: int) -> None:
    """Until the running ``trimmer`` has trimmed ``trims`` times (at most 5 s)."""
    for _ in range(250):
        await asyncio.sleep(0.02)
        if trimmer.trims >= trims:
            return


def test_a_trim_is_due_once_when_a_burst_is_over_and_never_while_the_load_is_steady() -> None:
    trimmer = Trimmer(lambda: 0, interval_s=10)
    served = 0
    due = []
    # Steady load (no trim), a burst, the load falling by more than half (one trim), quiet
    # (no second trim), steady again (none), then traffic stopping (one more).
    for step in [100, 100, 100, 400, 50, 0, 0, 10, 10, 10, 0, 0]:
        served += step
        due.append(trimmer.due(served))
    assert due == [False] * 4 + [True] + [False] * 5 + [True, False]


def test_traffic_that_stops_after_a_burst_is_seen_at_the_next_look() -> None:
    # Looks every 2 s, between the interval's checks: a trim need not wait for the end of
    # an interval (up to two of them after the burst) once no request comes at all.
    trimmer = Trimmer(lambda: 0, interval_s=10)
    served = 0
    seen = []
    # 700 requests then quiet (not a burst); 500 more (1,200 since the last trim) then
    # quiet (one trim); a trickle after it (none).
    for step in [300, 400, 0, 0, 500, 0, 0, 2, 0, 0]:
        served += step
        seen.append(trimmer.stopped(served))
    assert seen == [False] * 5 + [True] + [False] * 4


def test_a_fall_trimmed_at_a_look_is_not_trimmed_again_at_the_interval_check() -> None:
    trimmer = Trimmer(lambda: 0, interval_s=10)
    assert not trimmer.due(5000)  # the interval saw a burst
    assert not trimmer.stopped(5000)
    assert trimmer.stopped(5000)  # then nothing: trimmed at this look
    assert not trimmer.due(5000)  # and not again when the interval ends


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
async def test_the_running_trimmer_sweeps_then_trims_after_a_burst() -> None:
    counter = [0]
    swept = []

    def sweep() -> int:
        swept.append(trimmer.trims)  # how many trims had run when this tick swept
        return 0

    trimmer = Trimmer(lambda: counter[0], interval_s=0.02, before=sweep)
    trimmer.start()
    try:
        await asyncio.sleep(0)  # the trimmer has read the count it starts from
        counter[0] = 1000  # a burst in the first tick, then nothing
        await _trimmed(trimmer, 1)
    finally:
        await trimmer.stop()
    # Every tick sweeps; the trim came after a sweep, and only one was due.
    assert trimmer.trims == 1 and swept and swept[-1] == 0


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
async def test_connections_swept_after_the_bursts_trim_get_a_trim_of_their_own() -> None:
    # A burst's upstream connections are closed once idle for 4 s, which can be a tick after
    # the burst's trim: what they free is given back by one more trim, then none.
    counter = [0]
    ticks = [0]
    late: list[int] = []  # the tick that closed connections, after the burst's trim

    def sweep() -> int:
        ticks[0] += 1
        if trimmer.trims == 1 and not late:
            late.append(ticks[0])
            return 3
        return 0

    trimmer = Trimmer(lambda: counter[0], interval_s=0.02, before=sweep)
    trimmer.start()
    try:
        await asyncio.sleep(0)
        counter[0] = 1000
        for _ in range(250):
            await asyncio.sleep(0.02)
            if late and ticks[0] >= late[0] + 4:
                break
    finally:
        await trimmer.stop()
    assert trimmer.trims == 2


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection: as in a quiet spell, when nothing allocates."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
async def test_connections_closed_in_a_quiet_spell_are_freed_by_the_trimmer(
    collector_off: None,
) -> None:
    # A closed upstream connection is a cycle (its parser holds it back): with no traffic
    # nothing would collect it. The tick that sweeps the idle ones collects before trimming.
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def alive() -> int:
        return sum(type(o) is lean._Connection for o in gc.get_objects())

    before = alive()
    transport = lean.LeanTransport(pool_size=64)
    pool = transport._pools[("http", "127.0.0.1", port)] = lean._Pool("127.0.0.1", port, None, 64)
    burst = [await pool.acquire(5, False) for _ in range(20)]
    for conn in burst:
        pool.release(conn)
        conn.idle_since -= lean._IDLE_SECONDS + 1
    del burst, conn
    assert alive() == before + 20
    trimmer = Trimmer(lambda: 0, interval_s=0.02, before=transport.sweep_idle)
    trimmer.start()
    try:
        await _trimmed(trimmer, 1)
    finally:
        await trimmer.stop()
        server.close()
        await server.wait_closed()
    assert trimmer.trims == 1 and not pool.idle
    assert alive() <= before


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
def test_trim_now_returns_freed_heap_pages() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # Many small blocks (below the mmap threshold: they live in the heap), all freed but the
    # last, so the heap cannot shrink from its top on its own.
    blocks = [libc.malloc(64 * 1024) for _ in range(400)]
    for block in blocks[:-1]:
        libc.free(block)

    def rss_kb() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    # Touch nothing: freed-but-untouched pages may not be resident; write to each first.
    blocks2 = [libc.malloc(64 * 1024) for _ in range(399)]
    for block in blocks2:
        ctypes.memset(block, 1, 64 * 1024)
    for block in blocks2:
        libc.free(block)
    before = rss_kb()
    trimmer = Trimmer(lambda: 0, interval_s=10)
    trimmer.trim_now()
    after = rss_kb()
    libc.free(blocks[-1])
    assert trimmer.trims == 1
    assert before - after > 10_000  # at least ~10 MB of the ~25 MB freed went back


async def test_off_when_the_interval_is_zero() -> None:
    trimmer = Trimmer(lambda: 0, interval_s=0)
    trimmer.start()
    assert trimmer._task is None
    await trimmer.stop()


def test_the_setting_reads_its_environment_variable() -> None:
    assert resolve({}, {}, None).memory_trim_s == 10.0
    assert resolve({}, {"TOLLWAY_MEMORY_TRIM_S": "0"}, None).memory_trim_s == 0.0
    with pytest.raises(SettingsError, match="TOLLWAY_MEMORY_TRIM_S"):
        resolve({}, {"TOLLWAY_MEMORY_TRIM_S": "-1"}, None)


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
async def test_caches_are_released_before_each_trim_and_a_failing_release_does_not_stop_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = [0]
    calls: list[int] = []  # how many trims had run at each release

    async def release() -> None:
        calls.append(trimmer.trims)
        if len(calls) == 1:
            raise OSError("disk gone")

    trimmer = Trimmer(lambda: counter[0], interval_s=0.02, release=release)
    trimmer.start()
    try:
        for burst in range(2):
            await asyncio.sleep(0)
            counter[0] += 1000  # a burst, then nothing: one trim each
            await _trimmed(trimmer, burst + 1)
    finally:
        await trimmer.stop()
    assert trimmer.trims == 2 and calls == [0, 1]
    assert "memory release before a trim failed: OSError" in caplog.text
    assert "disk gone" not in caplog.text
