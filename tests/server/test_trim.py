"""``TOLLWAY_MEMORY_TRIM_S``: freed heap memory goes back to the system after a burst, once,
and nothing runs while the load is steady or when it is off."""

from __future__ import annotations

import asyncio
import ctypes
import sys

import pytest

from proxy.server.settings import SettingsError, resolve
from proxy.server.trim import Trimmer


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


async def _ticks(trimmer: Trimmer, counter: _Counter, per_tick: list[int]) -> list[int]:
    """Advance the served counter by ``per_tick[i]`` in tick i; the trims after each tick."""
    seen = []
    trimmer.start()
    try:
        for step in per_tick:
            counter.value += step
            await asyncio.sleep(trimmer.interval_s * 1.05)
            seen.append(trimmer.trims)
    finally:
        await trimmer.stop()
    return seen


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
async def test_trims_once_when_a_burst_is_over_and_never_while_the_load_is_steady() -> None:
    counter = _Counter()
    trimmer = Trimmer(counter, interval_s=0.05)
    # Steady load (no trim), a burst, the load falling by more than half (one trim), quiet
    # (no second trim), steady again (none), then traffic stopping (one more).
    seen = await _ticks(trimmer, counter, [100, 100, 100, 400, 50, 0, 0, 10, 10, 10, 0, 0])
    assert seen[:4] == [0, 0, 0, 0]
    assert seen[4] == 1  # 400 -> 50 per tick: the burst is over
    assert seen[5:10] == [1, 1, 1, 1, 1]
    assert seen[-1] == 2  # 10 -> 0: traffic stopped


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
