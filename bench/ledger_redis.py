"""``python -m bench.ledger_redis``: what the Redis ledger adds to one request, in µs.

Per request the pipeline awaits one admission (``pending`` + ``admit_remote``: one EVALSHA
round trip) and enqueues one settle (sent pipelined by a background task, not the client's
wait). This times, on the real code against a redis-server started for the run:

- ``admit``: pending + admit_remote, awaited (what a request waits for);
- ``settle``: the synchronous settle call on the request path (queueing only);
- ``settle round trip``: a settle sent alone and acknowledged (the background task's cost
  when it is not batching), for completeness;
- ``ping``: one PING through the same client, the floor of any Redis round trip here;
- ``memory admit+settle``: the in-memory ledger's two calls, the baseline.

Accounts as a virtual key sees them: key, user and team, with rpm, tpm and budgets set.
Environment: LEDGER_BENCH_N (5000 requests), LEDGER_BENCH_CONCURRENCY (1),
LEDGER_BENCH_LIMITS (``all``: every limit on the three levels; ``key``: see ``_limits``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.redis_server import start_redis
from proxy.ledger.memory import Ledger, Limits
from proxy.ledger.redis import RedisLedger, redis_client

ACCOUNTS = ["key:bench", "user:bench", "team:bench"]
LIMITS = Limits(max_budget=1e6, rpm_limit=10**9, tpm_limit=10**12, max_parallel_requests=10**6)
BUDGET_ONLY = Limits(max_budget=1e6)


def _limits(account: str) -> Limits:
    """Every limit on every level, or (LEDGER_BENCH_LIMITS=key) rpm/tpm/parallel on the key
    and budgets only on its user and team (the common shape)."""
    if os.environ.get("LEDGER_BENCH_LIMITS") == "key" and not account.startswith("key:"):
        return BUDGET_ONLY
    return LIMITS


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    n = len(ordered)
    p = {q: ordered[min(n - 1, int(n * q / 100))] * 1e6 for q in (50, 90, 99)}
    mean = statistics.mean(ordered) * 1e6
    return f"p50 {p[50]:7.1f}  p90 {p[90]:7.1f}  p99 {p[99]:7.1f}  mean {mean:7.1f}"


async def _redis(url: str, n: int, concurrency: int) -> dict[str, list[float]]:
    ledger = RedisLedger(redis_client(url, 1.0), timeout_s=1.0)
    for account in ACCOUNTS:
        ledger.set_account(account, _limits(account))
    await ledger.start()
    admit: list[float] = []
    settle: list[float] = []
    clock = time.perf_counter

    async def one(i: int) -> None:
        started = clock()
        reservation = await ledger.admit_remote(
            ledger.pending(f"b{i}", ACCOUNTS, tokens=200, cost=0.001)
        )
        admitted = clock()
        ledger.settle(reservation, cost=0.0005, tokens=150)
        admit.append(admitted - started)
        settle.append(clock() - admitted)

    for i in range(200):  # warm-up: connections, scripts
        await one(-i - 1)
    await ledger.flush()
    admit.clear()
    settle.clear()
    cpu = time.process_time()
    for start in range(0, n, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + concurrency))))
    await ledger.flush()
    cpu_per_call = (time.process_time() - cpu) / n
    round_trip: list[float] = []
    for i in range(min(n, 2000)):
        reservation = await ledger.admit_remote(
            ledger.pending(f"s{i}", ACCOUNTS, tokens=200, cost=0.001)
        )
        started = clock()
        ledger.settle(reservation, cost=0.0005, tokens=150)
        await ledger.flush()
        round_trip.append(clock() - started)
    # The floor: one PING round trip through the same client, and the scripts' own time.
    ping: list[float] = []
    for _ in range(min(n, 2000)):
        started = clock()
        await ledger.client.ping()
        ping.append(clock() - started)
    stats = await ledger.client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    print(
        "Redis server time per EVALSHA (admit and settle scripts): "
        f"{evalsha.get('usec_per_call')} µs"
    )
    await ledger.stop()
    cpu = time.process_time()
    for _ in range(len(ping)):
        await ledger.client.ping()
    ping_cpu = (time.process_time() - cpu) / len(ping)
    print(
        f"Gateway CPU per request, admission + settle (incl. the batched settle): "
        f"{cpu_per_call * 1e6:.0f} µs; per bare PING: {ping_cpu * 1e6:.0f} µs"
    )
    return {"admit": admit, "settle": settle, "settle round trip": round_trip, "ping": ping}


def _memory(n: int) -> list[float]:
    ledger = Ledger()
    for account in ACCOUNTS:
        ledger.set_account(account, _limits(account))
    clock = time.perf_counter
    samples = []
    for i in range(n):
        started = clock()
        reservation = ledger.admit(f"m{i}", ACCOUNTS, tokens=200, cost=0.001)
        ledger.settle(reservation, cost=0.0005, tokens=150)
        samples.append(clock() - started)
    return samples


def main() -> None:
    n = int(os.environ.get("LEDGER_BENCH_N", "5000"))
    concurrency = int(os.environ.get("LEDGER_BENCH_CONCURRENCY", "1"))
    work = Path(tempfile.mkdtemp(prefix="tollway-ledger-bench-"))
    redis = start_redis(work, dict(os.environ))
    try:
        import uvloop

        results = uvloop.run(_redis(redis.url, n, concurrency))
    finally:
        redis.stop()
    results["memory admit+settle"] = _memory(n)
    print(f"Redis ledger, {n} requests, concurrency {concurrency}, 3 accounts (µs):")
    for name, samples in results.items():
        print(f"  {name:20s} {_summary(samples)}")
    added = [a + s for a, s in zip(results["admit"], results["settle"], strict=True)]
    print(f"  {'added per request':20s} {_summary(added)}  (admit + settle on the request path)")


if __name__ == "__main__":
    main()
