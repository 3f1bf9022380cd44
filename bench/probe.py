"""The precise probe: sequential requests at concurrency 1, timed with ``perf_counter``.

Locust's stats round to whole milliseconds, too coarse for a gateway that adds a fraction of
one. Here one aiohttp client alternates between targets request by request (so drift in the
machine's speed hits every target alike) and keeps every latency in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

import aiohttp

from bench.payloads import CHAT_BODY, STREAM_BODY, varied_body


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -int(-fraction * len(sorted_values) // 1))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, key: str) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered HTTP {response.status}")
    return (time.perf_counter() - start) * 1e6


async def _probe(
    targets: Mapping[str, tuple[str, str]], requests: int, warmup: int, vary: Collection[str]
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {}
    connector = aiohttp.TCPConnector(limit=len(targets), force_close=False)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        for scenario, body, fresh in (
            ("non-stream", CHAT_BODY, varied_body),
            ("stream", STREAM_BODY, _varied_stream),
        ):
            per_target: dict[str, list[float]] = {name: [] for name in targets}
            for i in range(warmup + requests):
                for name, (url, key) in targets.items():
                    sent = fresh() if name in vary else body
                    micros = await _one(session, url, sent, key)
                    if i >= warmup:
                        per_target[name].append(micros)
            samples[scenario] = per_target
    return samples


def _varied_stream() -> bytes:
    return varied_body(stream=True)


def run_probe(
    targets: Mapping[str, tuple[str, str]],
    *,
    requests: int = 2000,
    warmup: int = 200,
    vary: Collection[str] = (),
) -> dict[str, dict[str, dict[str, float]]]:
    """``{scenario: {target: {p50, p90, p99, mean, added_p50, ...}}}`` in microseconds.

    ``targets`` maps a name to ``(chat completions URL, key)``; the first is the baseline
    that ``added_*`` is measured against. Targets in ``vary`` get a fresh prompt per request
    (``bench.payloads.varied_body``: no cache can answer it).
    """
    try:
        import uvloop

        samples = uvloop.run(_probe(targets, requests, warmup, vary))
    except ImportError:  # pragma: no cover
        samples = asyncio.run(_probe(targets, requests, warmup, vary))
    baseline = next(iter(targets))
    report: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, per_target in samples.items():
        stats: dict[str, dict[str, float]] = {}
        for name, values in per_target.items():
            values.sort()
            stats[name] = {
                "requests": float(len(values)),
                "mean": sum(values) / len(values),
                "p50": percentile(values, 0.50),
                "p90": percentile(values, 0.90),
                "p99": percentile(values, 0.99),
            }
        for name, row in stats.items():
            if name != baseline:
                for key in ("p50", "p90", "p99", "mean"):
                    row[f"added_{key}"] = row[key] - stats[baseline][key]
        report[scenario] = stats
    return report
