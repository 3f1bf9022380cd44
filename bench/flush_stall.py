"""``python -m bench.flush_stall``: how long a spend-log flush stalls the event loop.

The flush runs on the SQLite connection's thread (``Store.apply_flush``), but that thread
holds the GIL whenever it is not inside ``sqlite3_step``: binding a multi-row INSERT's values
is one such stretch, and the event loop waits it out. Here the loop does what it does for one
user (200 µs of work, 200 µs idle, then a round trip through a socket pair) while a flush of
``BENCH_FLUSH_ROWS`` spend-log rows (300: 200 ms of one user's requests) runs, and the worst
round trip during each flush is kept. Variants alternate flush by flush, so drift in the
machine's speed hits them alike:

- ``rows<N>``: N rows per INSERT statement (``Table.rows_per_insert``; the store's is 16).

``BENCH_FLUSH_CPUS`` (default ``0,1``) is the CPUs this process may use: with one, the
SQLite thread also competes with the loop for the CPU.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import tempfile
import time

import uvloop

from bench.micro_store import spend_log_rows
from proxy.store import sqlite

VARIANTS = ("rows128", "rows32", "rows16", "rows8")


async def _worst_stalls(rounds: int, rows: int) -> dict[str, list[float]]:
    store = await sqlite.Store.open(tempfile.mkdtemp(prefix="tollway-flush-") + "/flush.db")
    loop = asyncio.get_running_loop()
    near, far = socket.socketpair()
    near.setblocking(False)
    far.setblocking(False)
    kept = sqlite._LOGS.rows_per_insert
    worst: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        for _ in range(rounds):
            for variant in VARIANTS:
                sqlite._LOGS.rows_per_insert = int(variant.removeprefix("rows"))
                flush = asyncio.ensure_future(store.apply_flush([], spend_log_rows(rows)))
                longest = 0.0
                while not flush.done():
                    busy_until = time.perf_counter() + 0.0002
                    while time.perf_counter() < busy_until:
                        pass  # a request's work
                    await asyncio.sleep(0.0002)  # waiting for the next one
                    started = time.perf_counter()
                    await loop.sock_sendall(near, b"x")
                    await loop.sock_recv(far, 1)
                    longest = max(longest, time.perf_counter() - started)
                await flush
                worst[variant].append(longest * 1e6)
                await asyncio.sleep(0.01)
    finally:
        sqlite._LOGS.rows_per_insert = kept
        near.close()
        far.close()
        await store.close()
    return worst


def main() -> int:
    cpus = {int(c) for c in os.environ.get("BENCH_FLUSH_CPUS", "0,1").split(",")}
    os.sched_setaffinity(0, cpus)
    rounds = int(os.environ.get("BENCH_FLUSH_ROUNDS", "30"))
    rows = int(os.environ.get("BENCH_FLUSH_ROWS", "300"))
    worst = uvloop.run(_worst_stalls(rounds, rows))
    print(
        f"Worst event-loop round trip during a {rows}-row spend-log flush (µs), "
        f"{rounds} flushes per variant, CPUs {sorted(cpus)}"
    )
    print()
    print("| rows per INSERT | median | p90 | max |")
    print("|---|---|---|---|")
    for variant, values in worst.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(
            f"| {variant.removeprefix('rows')} | {statistics.median(values):.0f} | {p90:.0f} "
            f"| {values[-1]:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
