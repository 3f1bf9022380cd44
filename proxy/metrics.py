"""``/metrics``: the app's Prometheus registry, rendered by ``prometheus_client``.

Each app has its own ``CollectorRegistry`` (never the process-wide default: tests build many
apps in one process). It holds:

- ``GatewayCollector``, read at scrape time from what the stages already count: requests by
  status, deployments (attempts, failures, cooldowns, in flight, latency EWMAs), retries and
  fallbacks, the ledger (in flight, reserved), the flusher (queue, flushed, failures), the
  cache, and the callback queues per sink. Always on. With the Prometheus callback on, it
  adds LiteLLM's scrape-time series: ``litellm_deployment_state``, the deployment
  success/failure/cooled-down counters and the remaining team, key and user budgets.
- ``PrometheusObserver`` (``proxy.observe.prometheus``), the per-call series, when
  ``prometheus`` is a configured callback.

Nothing here is on the request path: the collector only reads counters when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from .cache.stage import Cache
from .directory import Directory, key_account, team_account, user_account
from .ledger import Ledger
from .ledger.flush import Flusher
from .observe.bus import EventBus
from .observe.prometheus import exception_class
from .routing.dispatch import Dispatcher
from .routing.state import FAIL_WINDOW_S, DeploymentState
from .stats import MetricsSource
from .upstream.deployment import Deployment

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def registry_for(source: MetricsSource) -> CollectorRegistry:
    """The app's registry: the scrape-time collector, and the per-call observer when on."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(source))
    if source.prometheus is not None:
        registry.register(source.prometheus)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of ``registry``."""
    return generate_latest(registry)


class GatewayCollector:
    """Reads the gateway's counters and gauges when scraped."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        source = self._source
        yield from _cache(source.cache)
        requests = CounterMetricFamily(
            "tollway_requests", "Inference requests settled, by status.", labels=["status"]
        )
        for status, count in sorted(source.stats.by_status.items()):
            requests.add_metric([str(status)], count)
        yield requests
        now = source.clock.monotonic()
        router = source.router
        states = [router.state(d) for d in router.deployments()]
        yield from _deployments(states, now)
        yield from _routing(source.dispatch)
        yield from _ledger(source.ledger, source.flusher)
        yield from CallbackCollector(source.events).collect()
        if source.prometheus is not None:
            yield from _litellm_deployments(states, now)
            yield from _budgets(source.directory, source.ledger)


def _cache(cache: Cache | None) -> Iterator[Metric]:
    if cache is None:
        return
    lookups = CounterMetricFamily(
        "tollway_cache_requests", "Cache lookups, by result.", labels=["result"]
    )
    for result in ("hit", "miss", "bypass"):
        lookups.add_metric([result], cache.counts[result])
    yield lookups
    yield CounterMetricFamily(
        "tollway_cache_semantic_hits",
        "Hits found by similarity.",
        value=cache.counts["semantic_hit"],
    )


_IDENT = ["model", "deployment", "model_id"]


def _ident(d: Deployment) -> list[str]:
    return [d.model_name, d.label, d.id]


def _deployments(states: list[DeploymentState], now: float) -> Iterator[Metric]:
    attempts = CounterMetricFamily(
        "tollway_deployment_requests",
        "Upstream attempts by deployment and outcome status (499: cancelled).",
        labels=[*_IDENT, "status"],
    )
    failures = CounterMetricFamily("tollway_deployment_failures", "Failed attempts.", labels=_IDENT)
    cooldowns = CounterMetricFamily(
        "tollway_deployment_cooldowns", "Times cooled down.", labels=_IDENT
    )
    in_flight = GaugeMetricFamily(
        "tollway_deployment_in_flight", "Attempts in flight.", labels=_IDENT
    )
    cooling = GaugeMetricFamily(
        "tollway_deployment_cooling", "1 while the deployment is cooling down.", labels=_IDENT
    )
    latency = GaugeMetricFamily(
        "tollway_deployment_latency_ewma_seconds", "EWMA of latency.", labels=_IDENT
    )
    ttft = GaugeMetricFamily(
        "tollway_deployment_ttft_ewma_seconds", "EWMA of time to first chunk.", labels=_IDENT
    )
    for state in states:
        ident = _ident(state.deployment)
        for status, count in sorted(state.outcomes.items()):
            attempts.add_metric([*ident, str(status)], count)
        failures.add_metric(ident, state.failures)
        cooldowns.add_metric(ident, state.cooldowns)
        in_flight.add_metric(ident, state.in_flight)
        cooling.add_metric(ident, int(state.cooling(now)))
        if state.latency_ewma is not None:
            latency.add_metric(ident, state.latency_ewma)
        if state.ttft_ewma is not None:
            ttft.add_metric(ident, state.ttft_ewma)
    yield from (attempts, failures, cooldowns, in_flight, cooling, latency, ttft)


def _routing(dispatch: Dispatcher) -> Iterator[Metric]:
    retries = CounterMetricFamily(
        "tollway_retries", "Retries, by requested model group.", labels=["model"]
    )
    for model, count in sorted(dispatch.retries.items()):
        retries.add_metric([model], count)
    fallbacks = CounterMetricFamily(
        "tollway_fallbacks", "Fallbacks, by requested model group.", labels=["model"]
    )
    for model, count in sorted(dispatch.fallbacks.items()):
        fallbacks.add_metric([model], count)
    yield from (retries, fallbacks)


def _ledger(ledger: Ledger, flusher: Flusher) -> Iterator[Metric]:
    in_flight, reserved = ledger.outstanding()
    yield GaugeMetricFamily(
        "tollway_ledger_in_flight", "Admitted calls not yet settled.", value=in_flight
    )
    yield GaugeMetricFamily(
        "tollway_ledger_reserved_usd", "Worst-case cost reserved in flight.", value=reserved
    )
    try:
        flush = flusher.stats()
    except RuntimeError:  # not started yet, or stopped
        return
    yield GaugeMetricFamily(
        "tollway_flush_queued",
        "Spend-log rows not yet committed (the flush queue's depth).",
        value=flush.queued,
    )
    yield GaugeMetricFamily(
        "tollway_flush_pending_accounts",
        "Accounts whose spend is drained from the ledger but not yet committed.",
        value=flush.pending_accounts,
    )
    yield CounterMetricFamily(
        "tollway_flush_flushed", "Spend-log rows committed since start.", value=flush.flushed
    )
    yield CounterMetricFamily(
        "tollway_flush_failures", "Failed flush attempts.", value=flush.failures
    )
    yield CounterMetricFamily(
        "tollway_flush_overflow", "Rows enqueued past the queue's bound.", value=flush.overflow
    )
    if flush.last_flush_ms is not None:
        yield GaugeMetricFamily(
            "tollway_flush_last_duration_seconds",
            "How long the last successful flush took.",
            value=flush.last_flush_ms / 1000,
        )


class CallbackCollector:
    """The callback queues, per sink: depth, delivered, dropped, batches given up."""

    def __init__(self, events: EventBus) -> None:
        self._events = events

    def collect(self) -> Iterator[Metric]:
        return _callbacks(self._events)


def _callbacks(events: EventBus) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "tollway_callback_queue_depth", "Events waiting for a sink.", labels=["sink"]
    )
    delivered = CounterMetricFamily(
        "tollway_callback_delivered", "Events a sink accepted.", labels=["sink"]
    )
    dropped = CounterMetricFamily(
        "tollway_callback_dropped",
        "Events dropped for a sink (queue full, or retries exhausted).",
        labels=["sink"],
    )
    failed = CounterMetricFamily(
        "tollway_callback_failed_batches", "Batches given up after retries.", labels=["sink"]
    )
    for name, stats in sorted(events.stats.items()):
        depth.add_metric([name], stats.queue.qsize())
        delivered.add_metric([name], stats.delivered)
        dropped.add_metric([name], stats.dropped)
        failed.add_metric([name], stats.failed_batches)
    yield from (depth, delivered, dropped, failed)


_LITELLM_DEPLOYMENT = ["litellm_model_name", "model_id", "api_base", "api_provider"]
_LITELLM_RESPONSES = ["requested_model", *_LITELLM_DEPLOYMENT]


def _litellm_deployments(states: list[DeploymentState], now: float) -> Iterator[Metric]:
    state_gauge = GaugeMetricFamily(
        "litellm_deployment_state",
        "The state of the deployment: 0 = healthy, 1 = partial outage, 2 = complete outage.",
        labels=_LITELLM_DEPLOYMENT,
    )
    total = CounterMetricFamily(
        "litellm_deployment_total_requests",
        "Total LLM API calls to a deployment, success + failure.",
        labels=_LITELLM_RESPONSES,
    )
    success = CounterMetricFamily(
        "litellm_deployment_success_responses",
        "Successful LLM API calls to a deployment.",
        labels=_LITELLM_RESPONSES,
    )
    failure = CounterMetricFamily(
        "litellm_deployment_failure_responses",
        "Failed LLM API calls to a deployment, by status and exception class.",
        labels=[*_LITELLM_RESPONSES, "exception_status", "exception_class"],
    )
    cooled = CounterMetricFamily(
        "litellm_deployment_cooled_down",
        "Times a deployment was cooled down.",
        labels=_LITELLM_DEPLOYMENT,
    )
    for state in states:
        d = state.deployment
        labels = [d.label, d.id, _public_base(d.api_base), d.provider]
        recent = any(at > now - FAIL_WINDOW_S for at in state.recent_fails)
        state_gauge.add_metric(labels, 2 if state.cooling(now) else 1 if recent else 0)
        ok = sum(count for status, count in state.outcomes.items() if status < 400)
        total.add_metric([d.model_name, *labels], sum(state.outcomes.values()))
        success.add_metric([d.model_name, *labels], ok)
        for status, count in sorted(state.outcomes.items()):
            if status >= 400:
                name = exception_class(status, d.provider)
                failure.add_metric([d.model_name, *labels, str(status), name], count)
        cooled.add_metric(labels, state.cooldowns)
    yield from (state_gauge, total, success, failure, cooled)


def _budgets(directory: Directory, ledger: Ledger) -> Iterator[Metric]:
    """Remaining and max budgets of the keys, teams and users that have a budget."""
    team_left = GaugeMetricFamily(
        "litellm_remaining_team_budget_metric",
        "Remaining budget for a team.",
        labels=["team", "team_alias"],
    )
    team_max = GaugeMetricFamily(
        "litellm_team_max_budget_metric",
        "Maximum budget for a team.",
        labels=["team", "team_alias"],
    )
    for team in directory.teams.values():
        if team.max_budget is not None:
            labels = [team.team_id, team.team_alias or ""]
            spend = ledger.spend(team_account(team.team_id)) or 0.0
            team_left.add_metric(labels, team.max_budget - spend)
            team_max.add_metric(labels, team.max_budget)
    key_labels = ["hashed_api_key", "api_key_alias"]
    key_left = GaugeMetricFamily(
        "litellm_remaining_api_key_budget_metric",
        "Remaining budget for an API key.",
        labels=key_labels,
    )
    key_max = GaugeMetricFamily(
        "litellm_api_key_max_budget_metric", "Maximum budget for an API key.", labels=key_labels
    )
    for key in directory.keys.values():
        if key.max_budget is not None:
            labels = [key.token_hash, key.key_alias or ""]
            spend = ledger.spend(key_account(key.token_hash)) or 0.0
            key_left.add_metric(labels, key.max_budget - spend)
            key_max.add_metric(labels, key.max_budget)
    user_left = GaugeMetricFamily(
        "litellm_remaining_user_budget_metric", "Remaining budget for a user.", labels=["user"]
    )
    for user in directory.users.values():
        if user.max_budget is not None:
            spend = ledger.spend(user_account(user.user_id)) or 0.0
            user_left.add_metric([user.user_id], user.max_budget - spend)
    yield from (team_left, team_max, key_left, key_max, user_left)


def _public_base(url: str) -> str:
    """The API base without credentials or a query string (either may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
