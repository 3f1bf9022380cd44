"""Scaling rows: added latency as the work per request grows, against the direct upstream.

Each row is one locust run per target (``direct`` and ``tollway``) at one user, with the
clients' bodies changed through the environment (bench/payloads.py): prompts of 1 KB, 100 KB
and 1 MB (JSON answers: the body is read, authenticated, parsed and forwarded; the
pass-through path must not grow with it beyond the copy itself) and streams of 20, 200 and
2,000 SSE events (the fake upstream writes them at once, so the row is the relay's cost per
event). ``BENCH_SCALING=0`` leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# scenario label -> (locust scenario, client environment)
SCALING: dict[str, tuple[str, dict[str, str]]] = {
    "prompt-1KB": ("non-stream", {"BENCH_PROMPT_BYTES": str(1024)}),
    "prompt-100KB": ("non-stream", {"BENCH_PROMPT_BYTES": str(100 * 1024)}),
    "prompt-1MB": ("non-stream", {"BENCH_PROMPT_BYTES": str(1024 * 1024)}),
    "stream-20": ("stream", {"BENCH_STREAM_CHUNKS": "20"}),
    "stream-200": ("stream", {"BENCH_STREAM_CHUNKS": "200"}),
    "stream-2000": ("stream", {"BENCH_STREAM_CHUNKS": "2000"}),
}
SCALING_TARGETS = ("direct", "tollway")
# The metric each kind of row is judged on.
SCALING_METRICS = {"non-stream": ("chat",), "stream": ("stream-ttfb", "stream-total")}

RunOne = Callable[[str, str, str, dict[str, str]], Mapping[str, Any]]


def run_scaling(
    run_one: RunOne, summarise: Callable[[Mapping[str, Any], str], dict[str, float]]
) -> list[dict[str, Any]]:
    """``run_one(label, scenario, target, env)`` is one locust run; returns summary rows."""
    rows: list[dict[str, Any]] = []
    for label, (scenario, env) in SCALING.items():
        for target in SCALING_TARGETS:
            raw = run_one(label, scenario, target, env)
            for metric in SCALING_METRICS[scenario]:
                rows.append(
                    {
                        "scenario": label,
                        "users": 1,
                        "target": target,
                        "metric": metric,
                        **summarise(raw, metric),
                    }
                )
    return rows


def scaling_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per scaling row and metric: direct and tollway p50/p99, tollway's added p50/p99 and
    the ratio tollway / direct of p50 and of req/s."""
    index = {(r["scenario"], r["metric"], r["target"]): r for r in runs if r["users"] == 1}
    out: list[dict[str, Any]] = []
    for label, (scenario, _) in SCALING.items():
        for metric in SCALING_METRICS[scenario]:
            direct = index.get((label, metric, "direct"))
            gateway = index.get((label, metric, "tollway"))
            if direct is None or gateway is None:
                continue
            out.append(
                {
                    "row": label,
                    "metric": metric,
                    "direct_p50": direct["p50"],
                    "tollway_p50": gateway["p50"],
                    "added_p50": gateway["p50"] - direct["p50"],
                    "added_p99": gateway["p99"] - direct["p99"],
                    "added_p99.9": gateway["p99.9"] - direct["p99.9"],
                    "p50_ratio": _ratio(gateway["p50"], direct["p50"]),
                    "rps_ratio": _ratio(gateway["rps"], direct["rps"]),
                }
            )
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def scaling_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "## Scaling with the work (1 user; ms; ratio = tollway / direct)",
        "",
        "| row | metric | direct p50 | tollway p50 | +p50 | +p99 | +p99.9 | p50 ratio "
        "| req/s ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['metric']} | {r['direct_p50']:.2f} | {r['tollway_p50']:.2f} "
            f"| {r['added_p50']:+.2f} | {r['added_p99']:+.2f} | {r['added_p99.9']:+.2f} "
            f"| {r['p50_ratio']:.2f}x | {r['rps_ratio']:.2f}x |"
        )
    return lines
