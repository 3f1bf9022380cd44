"""``python -m bench.jitter [cpu] [seconds]``: how steady the CPU itself is.

One process runs the same 300-iteration Python loop (~16 µs) back to back on one CPU and
times each run. On a quiet machine every run takes about the median; on this VM about 1%
of them take three times as long or more, in bursts of ~100 ms, with nothing else running:
the host takes the CPU away. A one-user request of ~250 µs of gateway CPU that lands in such
a burst takes three times as long, so the one-user p99 is partly the machine's. ``make
bench`` records this before its one-user probe, and ``bench.spikes`` after its requests.
"""

from __future__ import annotations

import os
import sys
import time

from bench.probe import percentile

SLOW_FACTOR = 3.0


def _work() -> int:
    total = 0
    for i in range(300):
        total += i * i
    return total


def cpu_jitter(cpu: int | None = None, seconds: float = 3.0) -> dict[str, float]:
    """Median, p99 and p99.9 of the loop's run time (µs) and the share of runs that took
    ``SLOW_FACTOR`` times the median or more, on ``cpu`` (this process is moved there for
    the measurement and back after)."""
    kept = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        runs: list[float] = []
        end = time.perf_counter() + seconds
        while True:
            started = time.perf_counter()
            _work()
            finished = time.perf_counter()
            runs.append(finished - started)
            if finished >= end:
                break
    finally:
        os.sched_setaffinity(0, kept)
    return summarize(runs)


def summarize(runs: list[float]) -> dict[str, float]:
    """``runs`` (seconds) as ``cpu_jitter`` reports them."""
    runs = sorted(runs)
    median = percentile(runs, 0.5)
    slow = sum(1 for value in runs if value >= SLOW_FACTOR * median)
    return {
        "median_us": median * 1e6,
        "p99_us": percentile(runs, 0.99) * 1e6,
        "p99.9_us": percentile(runs, 0.999) * 1e6,
        "slow_share": slow / len(runs),
    }


def describe(result: dict[str, float]) -> str:
    return (
        f"a {result['median_us']:.0f} µs loop: p99 {result['p99_us']:.0f} µs, p99.9 "
        f"{result['p99.9_us']:.0f} µs; {result['slow_share']:.2%} of runs took "
        f"{SLOW_FACTOR:.0f}x the median or more"
    )


def main(argv: list[str]) -> int:
    cpu = int(argv[0]) if argv else 0
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    print(f"CPU {cpu}, {seconds:.0f} s: {describe(cpu_jitter(cpu, seconds))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
