"""Turn raw benchmark numbers into summary rows and the Markdown tables that are printed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.jitter import describe
from bench.probe import percentile
from bench.scaling import scaling_markdown

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
# The request names whose latency is reported, per scenario (see bench/locustfile.py).
METRICS = {"non-stream": ("chat",), "stream": ("stream-ttfb", "stream-total")}


def summarise(raw: Mapping[str, Any], metric: str) -> dict[str, float]:
    """Count, requests/s, errors and latency percentiles (ms) of one request name."""
    times = sorted(raw["times_ms"].get(metric, []))
    seconds = raw["seconds"] or math.nan
    errors = sum(count for text, count in raw["failures"].items() if text.startswith(metric))
    row: dict[str, float] = {
        "requests": len(times),
        "errors": errors,
        "rps": len(times) / seconds,
        "mean": sum(times) / len(times) if times else math.nan,
    }
    for name, fraction in PERCENTILES:
        row[name] = percentile(times, fraction)
    return row


def added_latency(runs: Sequence[Mapping[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Per (scenario, users, metric): each target's percentiles minus the baseline's."""
    index = {(r["scenario"], r["users"], r["metric"], r["target"]): r for r in runs}
    out = []
    for run in runs:
        if run["target"] == baseline:
            continue
        base = index.get((run["scenario"], run["users"], run["metric"], baseline))
        if base is None:
            continue
        row: dict[str, Any] = {k: run[k] for k in ("scenario", "users", "metric", "target")}
        for name, _ in PERCENTILES:
            row[name] = run[name] - base[name]
        row["rps_ratio"] = run["rps"] / base["rps"] if base["rps"] else math.nan
        out.append(row)
    return out


# The metrics a feature's cost is shown on: JSON latency and time to first byte of a stream
# (rows driven by wrk time whole streams only: there the stream column is the whole stream).
FEATURE_METRICS = (
    ("non-stream", ("chat",), "json"),
    ("stream", ("stream-ttfb", "stream-total"), "ttfb"),
)


def feature_cost(
    runs: Sequence[Mapping[str, Any]],
    probe: Mapping[str, Mapping[str, Mapping[str, float]]] | None,
    targets: Sequence[str],
    baseline: str,
) -> list[dict[str, Any]]:
    """Per feature target and user count: Δp50 / Δp99 (ms) of JSON latency and stream TTFB
    and the req/s ratio, against ``baseline`` under the same load; then one row from the
    precise probe (``users`` = "probe"; its stream TTFB where it has one, else to the end)."""
    index = {(r["scenario"], r["users"], r["metric"], r["target"]): r for r in runs}
    users = sorted({r["users"] for r in runs})
    out: list[dict[str, Any]] = []
    for target in targets:
        for count in users:
            row: dict[str, Any] = {"target": target, "users": count}
            for scenario, metrics, label in FEATURE_METRICS:
                metric = next(
                    (m for m in metrics if (scenario, count, m, baseline) in index), metrics[0]
                )
                run = index.get((scenario, count, metric, target))
                base = index.get((scenario, count, metric, baseline))
                if run is None or base is None:
                    continue
                row[f"{label}_p50"] = run["p50"] - base["p50"]
                row[f"{label}_p99"] = run["p99"] - base["p99"]
                row[f"{label}_rps_ratio"] = run["rps"] / base["rps"] if base["rps"] else math.nan
            if len(row) > 2:  # a user count the feature target did not run at has no row
                out.append(row)
        if probe:
            row = {"target": target, "users": "probe"}
            for scenario, _, label in FEATURE_METRICS:
                per_target = probe.get(f"{scenario}-ttfb") or probe.get(scenario, {})
                if target in per_target and baseline in per_target:
                    for q in ("p50", "p99"):
                        delta_us = per_target[target][q] - per_target[baseline][q]
                        row[f"{label}_{q}"] = delta_us / 1000
            out.append(row)
    return out


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _signed_ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def _delta_ms(value: float | None) -> str:
    return "" if value is None else ("n/a" if math.isnan(value) else f"{value:+.3f}")


def _ratio(value: float | None) -> str:
    return "" if value is None else ("n/a" if math.isnan(value) else f"{value:.2f}x")


def _mb(value: float | None) -> str:
    return "" if not value else f"{value / 1e6:.0f}"


# The latency target for one user, in µs of added latency over the direct upstream.
ONE_USER_TARGET = {"p50": 250.0, "p99": 1000.0}


def one_user_markdown(result: Mapping[str, Any]) -> list[str]:
    """Tollway's added latency at one user from the precise probe of direct and tollway
    alone (``probe_alone``); results from before it was run have only the probe of all."""
    alone = result.get("probe_alone")
    probe = alone or result.get("probe") or {}
    rows = []
    for scenario in ("non-stream", "stream-ttfb"):
        s = probe.get(scenario, {}).get("tollway")
        if not s or "added_p50" not in s:
            continue
        verdict = all(s[f"added_{q}"] <= limit for q, limit in ONE_USER_TARGET.items())
        rows.append(
            [scenario]
            + [f"{s[f'added_{q}'] / 1000:+.2f}" for q in ("p50", "p90", "p99", "p99.9")]
            + ["met" if verdict else "not met"]
        )
    if not rows:
        return []
    requests = result["settings"].get("one_user_requests" if alone else "probe_requests")
    source = "direct and tollway alone" if alone else "all targets interleaved"
    source += f", {requests} requests each" if requests else ""
    out = [
        "",
        f"## Added latency at one user (ms over direct; precise probe, {source}; target "
        "p50 ≤ +0.25, p99 ≤ +1.0)",
        "",
        _table(["scenario", "p50", "p90", "p99", "p99.9", "target"], rows),
    ]
    jitter = result.get("jitter")
    if jitter:
        out += [
            "",
            f"The gateways' CPU just before, alone (`bench/jitter.py`): {describe(jitter)}.",
        ]
    return out


def markdown(result: Mapping[str, Any]) -> str:
    """The whole report: load runs, added latency, the precise probe, memory and caveats."""
    parts = [f"# Tollway benchmark {result['timestamp']}", ""]
    machine = result["machine"]
    settings = result["settings"]
    parts.append(
        f"Machine: {machine['cpus']} CPU(s), {machine['cpu_model']}, Python {machine['python']}. "
        f"Load runs: {settings['seconds']} s each (measured after all users spawned), users "
        f"{settings['users']}, key: {result['key_kind']}, CPU pinning: {settings['pinning']}."
    )
    loadgen = settings.get("loadgen", "locust")
    parts += [
        "",
        f"## Load (latency in ms; one user: locust FastHttpUser; above: {loadgen})",
        "",
    ]
    if loadgen == "wrk":
        parts += [
            "Rows above one user are driven by wrk, which times whole responses: their stream "
            "metric is the whole stream (`stream-total`), not its first byte.",
            "",
        ]
    parts.append(
        _table(
            [
                "scenario",
                "metric",
                "users",
                "target",
                "req/s",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "errors",
                "peak RSS MB",
            ],
            (
                [
                    r["scenario"],
                    r["metric"],
                    r["users"],
                    r["target"],
                    f"{r['rps']:.0f}",
                    _ms(r["p50"]),
                    _ms(r["p90"]),
                    _ms(r["p99"]),
                    _ms(r["p99.9"]),
                    _ms(r["max"]) if "max" in r else "",
                    r["errors"],
                    _mb(r.get("peak_rss_bytes")),
                ]
                for r in result["runs"]
            ),
        )
    )
    parts += ["", "## Added latency vs direct-to-upstream (ms, same load)", ""]
    parts.append(
        _table(
            [
                "scenario",
                "metric",
                "users",
                "target",
                "+p50",
                "+p90",
                "+p99",
                "+p99.9",
                "req/s vs direct",
            ],
            (
                [
                    a["scenario"],
                    a["metric"],
                    a["users"],
                    a["target"],
                    _signed_ms(a["p50"]),
                    _signed_ms(a["p90"]),
                    _signed_ms(a["p99"]),
                    _signed_ms(a["p99.9"]),
                    f"{a['rps_ratio']:.2f}x",
                ]
                for a in result["added"]
            ),
        )
    )
    cost = result.get("feature_cost") or []
    if cost:
        parts += [
            "",
            "## Cost of each feature vs plain tollway (Δ ms, same load; req/s as a ratio)",
            "",
            'Rows "probe" come from the precise probe (sequential, interleaved); there, and '
            "in rows driven by wrk (above one user), the stream column is the whole stream, "
            "not its first byte.",
            "",
        ]
        parts.append(
            _table(
                [
                    "target",
                    "users",
                    "JSON Δp50",
                    "JSON Δp99",
                    "JSON req/s",
                    "stream TTFB Δp50",
                    "stream TTFB Δp99",
                    "stream req/s",
                ],
                (
                    [
                        c["target"],
                        c["users"],
                        _delta_ms(c.get("json_p50")),
                        _delta_ms(c.get("json_p99")),
                        _ratio(c.get("json_rps_ratio")),
                        _delta_ms(c.get("ttfb_p50")),
                        _delta_ms(c.get("ttfb_p99")),
                        _ratio(c.get("ttfb_rps_ratio")),
                    ]
                    for c in cost
                ),
            )
        )
    parts += scaling_markdown(result.get("scaling") or [])
    parts += versus_markdown(result["runs"], "tollway", "litellm")
    parts += one_user_markdown(result)
    probe = result.get("probe")
    if probe:
        parts += [
            "",
            f"## Precise probe (µs; a blocking keep-alive socket per target, concurrency 1, "
            f"{settings['probe_requests']} requests per target, interleaved; stream-ttfb: to "
            "the reply's first byte)",
            "",
        ]
        rows = []
        quantiles = ("p50", "p90", "p99", "p99.9")
        for scenario, per_target in probe.items():
            for target, s in per_target.items():
                # Results from before the p99.9 column have none.
                rows.append(
                    [scenario, target]
                    + [f"{s[q]:.0f}" if q in s else "" for q in quantiles]
                    + [f"{s[f'added_{q}']:+.0f}" if f"added_{q}" in s else "" for q in quantiles]
                )
        parts.append(
            _table(
                ["scenario", "target", *quantiles, *(f"added {q}" for q in quantiles)],
                rows,
            )
        )
    memory = result.get("memory", {})
    if memory:
        parts += ["", "## Memory (RSS of the server process tree, MB)", ""]
        parts.append(
            _table(
                [
                    "target",
                    "idle (ready)",
                    "after warm-up",
                    "peak during load",
                    "after all runs",
                    f"{settings.get('idle_after_s', 13)} s later (no load)",
                ],
                (
                    [
                        t,
                        _mb(m.get("idle")),
                        _mb(m.get("after_warmup")),
                        _mb(m.get("peak")),
                        _mb(m.get("after_all")),
                        _mb(m.get("after_idle")),
                    ]
                    for t, m in memory.items()
                ),
            )
        )
    notes = result.get("notes") or []
    if notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"


def versus_markdown(runs: Sequence[Mapping[str, Any]], ours: str, theirs: str) -> list[str]:
    """Req/s of ``ours`` over ``theirs`` per scenario and user count (the throughput claim),
    with both sides' p50 and p99; empty when ``theirs`` did not run."""
    index = {(r["scenario"], r["users"], r["metric"], r["target"]): r for r in runs}
    lines: list[str] = []
    for (scenario, users, metric, target), run in index.items():
        if target != ours or metric not in ("chat", "stream-total"):
            continue
        other = index.get((scenario, users, metric, theirs))
        if other is None:
            continue
        ratio = run["rps"] / other["rps"] if other["rps"] else math.nan
        lines.append(
            f"| {scenario} | {users} | {run['rps']:.0f} | {other['rps']:.0f} | "
            f"{_ratio(ratio)} | {_ms(run['p50'])} / {_ms(run['p99'])} | "
            f"{_ms(other['p50'])} / {_ms(other['p99'])} | {other['errors']} |"
        )
    if not lines:
        return []
    return [
        "",
        f"## {ours} vs {theirs} (req/s ratio, same run, same upstream)",
        "",
        f"| scenario | users | {ours} req/s | {theirs} req/s | ratio | {ours} p50 / p99 ms "
        f"| {theirs} p50 / p99 ms | {theirs} errors |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
    ]
