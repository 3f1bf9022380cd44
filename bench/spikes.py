"""``python -m bench.spikes``: where the slowest one-user requests come from.

The fake upstream and one gateway run on CPU 0 (as in ``make bench``'s one-user rows), the
client on CPU 1. The client alternates ``direct`` and ``tollway`` request by request, with
the probe's keep-alive client (``probe.py``), and keeps each request's start and latency on
``perf_counter``'s clock (CLOCK_MONOTONIC: the same clock in every process). The gateway
records its spend-log flush windows and garbage-collection pauses on that clock
(``spikes_hook/sitecustomize.py``). Each of the slowest 1% and 0.1% of the gateway's
requests is then counted as overlapping a flush, overlapping a collection, or next to a slow
``direct`` request (the machine was slow for everyone), or none of these.

    python -m bench.spikes                 # JSON, 10,000 requests per target
    python -m bench.spikes --stream        # streams (the latency is to the first byte)
    python -m bench.spikes TOLLWAY_FLUSH_INTERVAL_MS=1000000   # the gateway with that env
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.jitter import cpu_jitter, describe
from bench.loadgen import CHAT_PATH
from bench.payloads import CHAT_BODY, STREAM_BODY
from bench.probe import QUANTILES, Client, percentile
from bench.procs import pin, start_gateway, start_upstream
from bench.run import MASTER_KEY, ROOT, bench_config
from bench.setup_keys import create_bench_key

HOOK = Path(__file__).resolve().parent / "spikes_hook"
Window = tuple[float, float]


def _overlaps(start: float, end: float, windows: Sequence[Window]) -> bool:
    return any(w_start <= end and start <= w_end for w_start, w_end in windows)


def attribute(
    samples: Sequence[tuple[float, float, float, float]],
    flushes: Sequence[Window],
    collections: Sequence[Window],
) -> list[dict[str, float]]:
    """For the slowest 1% and 0.1% of the gateway's requests in ``samples`` (direct start,
    direct µs, gateway start, gateway µs), how many overlap a flush, a collection, follow a
    slow direct request (direct's own slowest 1%), or none of these."""
    direct = sorted(s[1] for s in samples)
    slow_direct = percentile(direct, 0.99)
    gateway = sorted(s[3] for s in samples)
    out = []
    for fraction in (0.99, 0.999):
        threshold = percentile(gateway, fraction)
        slow = [s for s in samples if s[3] >= threshold]
        counts = {"fraction": 1 - fraction, "threshold_us": threshold, "requests": len(slow)}
        counts["flush"] = counts["gc"] = counts["machine"] = counts["none"] = 0
        for _, direct_us, start, gateway_us in slow:
            end = start + gateway_us / 1e6
            in_flush = _overlaps(start, end, flushes)
            in_gc = _overlaps(start, end, collections)
            machine = direct_us >= slow_direct
            counts["flush"] += in_flush
            counts["gc"] += in_gc
            counts["machine"] += machine
            counts["none"] += not (in_flush or in_gc or machine)
        out.append(counts)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spikes", description=__doc__)
    parser.add_argument("--stream", action="store_true", help="streams (time to first byte)")
    parser.add_argument("--requests", type=int, default=10_000, help="per target")
    parser.add_argument("env", nargs="*", metavar="NAME=VALUE", help="the gateway's extra env")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    body = STREAM_BODY if args.stream else CHAT_BODY
    work = Path(tempfile.mkdtemp(prefix="tollway-spikes-"))
    events_path = work / "events.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    upstream = start_upstream(work, env, {0})
    gateway_env = dict(
        env, PYTHONPATH=f"{HOOK}{os.pathsep}{ROOT}", TOLLWAY_BENCH_SPIKES=str(events_path)
    )
    samples: list[tuple[float, float, float, float]] = []
    try:
        gateway = start_gateway(work, bench_config(upstream.url), gateway_env, **extra)
        pin(gateway.pid, {0})
        try:
            key = create_bench_key(gateway.url, MASTER_KEY)
            os.sched_setaffinity(0, {1})
            direct = Client(upstream.url + CHAT_PATH, key)
            tollway = Client(gateway.url + CHAT_PATH, key)
            for _ in range(500):  # warm-up
                direct.post(body)
                tollway.post(body)
            for _ in range(args.requests):
                direct_start = time.perf_counter()
                direct_us = direct.post(body)[0]
                gateway_start = time.perf_counter()
                samples.append((direct_start, direct_us, gateway_start, tollway.post(body)[0]))
            direct.close()
            tollway.close()
        finally:
            gateway.stop()
    finally:
        upstream.stop()
    events = json.loads(events_path.read_text())
    first, last = samples[0][0], samples[-1][2]
    flush_events = [event for event in events["flush"] if first <= event[0] <= last]
    flushes = [(s, e) for s, e, _ in flush_events]
    rows = sorted(n for _, _, n in flush_events)
    collections = [(s, e) for s, e, _ in events["gc"] if first <= s <= last]
    direct_us = sorted(s[1] for s in samples)
    gateway_us = sorted(s[3] for s in samples)
    kind = "stream, to the first byte" if args.stream else "JSON"
    print(f"{args.requests} requests per target ({kind}), µs:")
    for q in ("p50", "p99", "p99.9"):
        d, g = percentile(direct_us, QUANTILES[q]), percentile(gateway_us, QUANTILES[q])
        print(f"  {q:6s} direct {d:7.0f}  tollway {g:7.0f}  added {g - d:+7.0f}")
    busy = sum(e - s for s, e in flushes) / (last - first)
    lengths = sorted((e - s) * 1000 for s, e in flushes) or [0.0]
    print(
        f"flushes: {len(flushes)}, {rows[len(rows) // 2] if rows else 0} rows each (median), "
        f"{percentile(lengths, 0.5):.1f} ms median, {lengths[-1]:.1f} ms longest; "
        f"{busy:.1%} of the time inside one"
    )
    pauses = sorted((e - s) * 1000 for s, e in collections) or [0.0]
    print(f"garbage collections: {len(collections)}, longest {pauses[-1]:.2f} ms")
    print(f"the CPU alone, after: {describe(cpu_jitter(0))}")
    for row in attribute(samples, flushes, collections):
        print(
            f"slowest {row['fraction']:.1%} of tollway's ({row['requests']:.0f}, "
            f">= {row['threshold_us']:.0f} µs): during a flush {row['flush']:.0f}, "
            f"during a collection {row['gc']:.0f}, next to a slow direct request "
            f"{row['machine']:.0f}, none of these {row['none']:.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
