"""``/metrics``: Prometheus text format, written by hand from the counters the stages keep.

Nothing here is on the request path: counters are plain ints that the stages bump; this module
only reads them when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from .cache.stage import Cache
from .ledger import Ledger
from .ledger.flush import Flusher
from .routing import Router
from .routing.dispatch import Dispatcher


class Stats:
    """Counters since start, read by /health and the tests."""

    __slots__ = ("by_status", "completion_tokens", "prompt_tokens", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.by_status: dict[int, int] = {}


class MetricsSource(Protocol):
    """What ``/metrics`` reads (the gateway's state provides it)."""

    @property
    def router(self) -> Router: ...
    @property
    def dispatch(self) -> Dispatcher: ...
    @property
    def stats(self) -> Stats: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def flusher(self) -> Flusher: ...
    @property
    def cache(self) -> Cache | None: ...


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Iterable[tuple[str, str]] = ()) -> None:
        text = repr(float(value)) if isinstance(value, float) else str(value)
        self.lines.append(f"{name}{_labels(labels)} {text}")


def render(state: MetricsSource) -> str:
    out = _Writer()
    router = state.router
    dispatch = state.dispatch
    now = time.monotonic()

    cache = state.cache
    if cache is not None:
        out.family("tollway_cache_requests_total", "counter", "Cache lookups, by result.")
        for result in ("hit", "miss", "bypass"):
            out.sample("tollway_cache_requests_total", cache.counts[result], [("result", result)])
        out.family("tollway_cache_semantic_hits_total", "counter", "Hits found by similarity.")
        out.sample("tollway_cache_semantic_hits_total", cache.counts["semantic_hit"])
    out.family("tollway_requests_total", "counter", "Inference requests settled, by status.")
    for status, count in sorted(state.stats.by_status.items()):
        out.sample("tollway_requests_total", count, [("status", str(status))])

    deployments = router.deployments()

    def ident(d: object) -> list[tuple[str, str]]:
        from .upstream.deployment import Deployment

        assert isinstance(d, Deployment)
        return [
            ("model", d.model_name),
            ("deployment", d.label),
            ("model_id", d.id),
        ]

    out.family(
        "tollway_deployment_requests_total",
        "counter",
        "Upstream attempts by deployment and outcome status (499: cancelled).",
    )
    for d in deployments:
        for status, count in sorted(router.state(d).outcomes.items()):
            out.sample(
                "tollway_deployment_requests_total", count, [*ident(d), ("status", str(status))]
            )
    per_deployment = (
        ("tollway_deployment_failures_total", "counter", "Failed attempts.", "failures"),
        ("tollway_deployment_cooldowns_total", "counter", "Times cooled down.", "cooldowns"),
        ("tollway_deployment_in_flight", "gauge", "Attempts in flight.", "in_flight"),
    )
    for name, kind, text, attr in per_deployment:
        out.family(name, kind, text)
        for d in deployments:
            out.sample(name, getattr(router.state(d), attr), ident(d))
    out.family("tollway_deployment_cooling", "gauge", "1 while the deployment is cooling down.")
    for d in deployments:
        out.sample("tollway_deployment_cooling", int(router.state(d).cooling(now)), ident(d))
    for name, attr, text in (
        ("tollway_deployment_latency_ewma_seconds", "latency_ewma", "EWMA of latency."),
        ("tollway_deployment_ttft_ewma_seconds", "ttft_ewma", "EWMA of time to first chunk."),
    ):
        out.family(name, "gauge", text)
        for d in deployments:
            value = getattr(router.state(d), attr)
            if value is not None:
                out.sample(name, float(value), ident(d))

    out.family("tollway_retries_total", "counter", "Retries, by requested model group.")
    for model, count in sorted(dispatch.retries.items()):
        out.sample("tollway_retries_total", count, [("model", model)])
    out.family("tollway_fallbacks_total", "counter", "Fallbacks, by requested model group.")
    for model, count in sorted(dispatch.fallbacks.items()):
        out.sample("tollway_fallbacks_total", count, [("model", model)])

    in_flight, reserved = state.ledger.outstanding()
    out.family("tollway_ledger_in_flight", "gauge", "Admitted calls not yet settled.")
    out.sample("tollway_ledger_in_flight", in_flight)
    out.family("tollway_ledger_reserved_usd", "gauge", "Worst-case cost reserved in flight.")
    out.sample("tollway_ledger_reserved_usd", float(reserved))
    try:
        flush = state.flusher.stats()
    except RuntimeError:
        flush = None
    if flush is not None:
        for field in flush.__struct_fields__:
            value = getattr(flush, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            name = f"tollway_flush_{field}"
            out.family(name, "gauge", f"Ledger flusher: {field.replace('_', ' ')}.")
            out.sample(name, value)
    return "\n".join(out.lines) + "\n"
