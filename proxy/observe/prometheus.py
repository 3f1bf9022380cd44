"""The per-call Prometheus series: LiteLLM's names and labels, plus Tollway's own.

Turned on the way LiteLLM turns its Prometheus logger on: ``prometheus`` in
``litellm_settings.callbacks`` (or ``success_callback`` / ``failure_callback``). Then
``GatewayState.settle`` calls ``PrometheusObserver.observe(call)`` once per call, on the event
loop, synchronously: a few counter increments and histogram observations, no I/O, no event
built. Series read from state at scrape time (deployment state, budgets, queues) are in
``proxy.metrics``.

Label cardinality stays bounded (LiteLLM's own rules do not bound it; ours do):

- ``end_user`` (the request's ``user`` field, free text from the client) is kept only when it
  is in ``general_settings.prometheus_end_user_allowlist``; any other value is ``"other"``;
  no value is ``""``.
- ``requested_model`` is the requested name when it is a configured model group or alias,
  else the group the call was routed to, else ``"other"``.
- ``model`` is the upstream model as called; for a wildcard deployment (``openai/*``) the
  requested name is kept only when the upstream answered it with a success (a real model),
  else ``"*"``.
- ``hashed_api_key``, ``api_key_alias``, ``team``, ``team_alias``, ``user`` come from the
  authenticated key and its records (bounded by the keys, teams and users that exist), never
  from the request body. Call ids, request ids and client IPs are never labels.
- LiteLLM's ``user_email``, ``client_ip``, ``user_agent`` and ``route`` labels are left out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Final, TypeVar, cast

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from ..config import Config
from ..errors import (
    BudgetExceeded,
    RateLimited,
    TollwayError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..pipeline.call import Call

# LiteLLM's buckets for its latency histograms (seconds).
LATENCY_BUCKETS: Final = (
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5,
    5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0,
    120.0, 180.0, 240.0, 300.0, float("inf"),
)  # fmt: skip
# The gateway's own time on a call is milliseconds, not seconds: finer buckets.
OVERHEAD_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    float("inf"),
)  # fmt: skip

OTHER = "other"
M = TypeVar("M", bound=MetricWrapperBase)

# Label sets, in LiteLLM's order (``litellm/types/integrations/prometheus.py``), less the
# unbounded ones (see the module docstring).
_SPEND = ("end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user")
_TOKENS = (*_SPEND, "requested_model")
_WHO = ("end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias")
_TOTAL = (*_WHO, "user", "status_code")
_FAILED = (*_WHO, "user", "exception_status", "exception_class")
_LATENCY = (*_WHO, "user", "model")
_API = ("model", "hashed_api_key", "api_key_alias", "team", "team_alias", "requested_model")
_API_LATENCY = (*_API, "end_user", "user")
_MODEL_ID = ("model_id",)

# LiteLLM names an exception by its provider and OpenAI-style class: ``Openai.RateLimitError``.
_EXCEPTION_CLASS: Final = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    413: "BadRequestError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    499: "ClientDisconnected",
    500: "InternalServerError",
    502: "APIConnectionError",
    503: "ServiceUnavailableError",
    504: "Timeout",
}
# The refusal names the level: "Rate limit reached for key: ...", "... would exceed the key
# budget: ...".
_LIMIT_KIND = re.compile(r"(?:for|would exceed the) ([a-z_]{1,32})(?::| budget)")


def exception_class(status: int, provider: str | None = None) -> str:
    """LiteLLM's ``exception_class`` label for an error status (bounded: one per status)."""
    name = _EXCEPTION_CLASS.get(status) or ("APIError" if status >= 500 else "BadRequestError")
    if provider:
        return f"{provider[:1].upper()}{provider[1:]}.{name}"
    return name


class _Children:
    """The labelled children for one identity (who called which model), each made on first
    use (a series appears once it has something to say) and then found by one dict lookup."""

    __slots__ = ("api", "latency", "made", "spend", "tokens")

    def __init__(self, identity: tuple[str, ...]) -> None:
        end_user, key, alias, team, team_alias, user, model, requested, model_id = identity
        self.spend = (end_user, key, alias, model, team, team_alias, user, model_id)
        self.tokens = (end_user, key, alias, model, team, team_alias, user, requested, model_id)
        self.latency = (end_user, key, alias, requested, team, team_alias, user, model, model_id)
        self.api = (model, key, alias, team, team_alias, requested, end_user, user, model_id)
        self.made: dict[int, MetricWrapperBase] = {}

    def of(self, metric: M, labels: tuple[str, ...]) -> M:
        child = self.made.get(id(metric))
        if child is None:
            child = self.made[id(metric)] = metric.labels(*labels)
        return cast(M, child)


class PrometheusObserver:
    """Counts every settled call into LiteLLM-named series and Tollway's per-call series.

    Its metrics live in no registry of their own: the ``/metrics`` route registers the
    observer (a collector) in the app's ``CollectorRegistry`` next to the scrape-time one.
    """

    def __init__(self, *, known_models: Iterable[str] = (), end_users: Iterable[str] = ()) -> None:
        self._known_models = frozenset(known_models)
        self._end_users = frozenset(end_users)
        self._children: dict[tuple[str, ...], _Children] = {}
        self.requests = _counter(
            "litellm_requests_metric", "Total number of LLM calls to litellm.", _SPEND
        )
        self.spend = _counter("litellm_spend_metric", "Total spend on LLM requests.", _SPEND)
        self.total_tokens = _counter(
            "litellm_total_tokens_metric", "Total input + output tokens.", _TOKENS
        )
        self.input_tokens = _counter("litellm_input_tokens_metric", "Input tokens.", _TOKENS)
        self.output_tokens = _counter("litellm_output_tokens_metric", "Output tokens.", _TOKENS)
        self.proxy_requests = _counter(
            "litellm_proxy_total_requests_metric", "Requests made to the proxy.", _TOTAL
        )
        self.proxy_failures = _counter(
            "litellm_proxy_failed_requests_metric", "Failed responses from the proxy.", _FAILED
        )
        self.total_latency = _histogram(
            "litellm_request_total_latency_metric",
            "Total latency (seconds) of a request to the proxy.",
            _LATENCY,
        )
        self.api_latency = _histogram(
            "litellm_llm_api_latency_metric",
            "Latency (seconds) of the upstream LLM API call.",
            _API_LATENCY,
        )
        self.ttft = _histogram(
            "litellm_llm_api_time_to_first_token_metric",
            "Time to first token (seconds) of a streamed call.",
            _API_LATENCY,
        )
        self.overhead = Histogram(
            "tollway_gateway_overhead_seconds",
            "Time a call spent in the gateway itself (total minus upstream).",
            buckets=OVERHEAD_BUCKETS,
            registry=None,
        )
        self.rejections = Counter(
            "tollway_limit_rejections_total",
            "Calls refused by a rate limit or budget, by reason and account kind.",
            ("reason", "account"),
            registry=None,
        )
        self.guardrail_verdicts = Counter(
            "tollway_guardrail_verdicts_total",
            "Guardrail verdicts, by guardrail, direction and action.",
            ("guardrail", "direction", "action"),
            registry=None,
        )
        self._metrics: tuple[MetricWrapperBase, ...] = (
            self.requests,
            self.spend,
            self.total_tokens,
            self.input_tokens,
            self.output_tokens,
            self.proxy_requests,
            self.proxy_failures,
            self.total_latency,
            self.api_latency,
            self.ttft,
            self.overhead,
            self.rejections,
            self.guardrail_verdicts,
        )

    @classmethod
    def from_config(cls, config: Config, known_models: Iterable[str]) -> PrometheusObserver:
        """The observer for ``config`` (built only when ``prometheus_enabled``: the caller
        decides before importing this module)."""
        general = config.general_settings
        return cls(known_models=known_models, end_users=general.prometheus_end_user_allowlist)

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield from metric.collect()

    def observe(self, call: Call) -> None:
        """Count one settled call (cheap: one dict lookup for the labelled children)."""
        identity = self._identity(call)
        children = self._children.get(identity)
        if children is None:
            children = self._children[identity] = _Children(identity)
        status = call.status
        # LiteLLM's order for the proxy-level series: requested_model before team.
        end_user, key, alias, team, team_alias, user, _, requested, model_id = identity
        who = (end_user, key, alias, requested, team, team_alias, user)
        self.proxy_requests.labels(*who, str(status), model_id).inc()
        if status >= 400:
            failure = _failure_class(call)
            self.proxy_failures.labels(*who, str(status), failure, model_id).inc()
            error = call.error
            if isinstance(error, RateLimited | BudgetExceeded):
                self.rejections.labels(*_rejection(error)).inc()
        else:
            children.of(self.requests, children.spend).inc()
        usage = call.usage
        if usage is not None:
            children.of(self.input_tokens, children.tokens).inc(usage.prompt_tokens)
            children.of(self.output_tokens, children.tokens).inc(usage.completion_tokens)
            total = usage.prompt_tokens + usage.completion_tokens
            children.of(self.total_tokens, children.tokens).inc(total)
        if call.cost:
            children.of(self.spend, children.spend).inc(call.cost)
        elapsed = time.perf_counter() - call.started
        children.of(self.total_latency, children.latency).observe(elapsed)
        if call.reached_upstream:
            children.of(self.api_latency, children.api).observe(call.upstream_s)
            self.overhead.observe(max(0.0, call.overhead_ms() / 1000))
            request = call.request
            if call.first_token_s is not None and request is not None and request.stream:
                children.of(self.ttft, children.api).observe(call.first_token_s)
        for verdict in call.guardrails:
            self.guardrail_verdicts.labels(
                str(verdict.get("name", "")),
                str(verdict.get("direction", "")),
                str(verdict.get("action", "")),
            ).inc()

    def _identity(self, call: Call) -> tuple[str, ...]:
        principal = call.principal
        key = principal.key if principal is not None else None
        team = principal.team if principal is not None else None
        user = principal.user if principal is not None else None
        request = call.request
        deployment = call.deployment
        end_user = ""
        requested = ""
        model = ""
        if request is not None:
            asked = request.end_user()
            if asked:
                end_user = asked if asked in self._end_users else OTHER
            requested = request.model
            if requested not in self._known_models:
                requested = deployment.model_name if deployment is not None else OTHER
        if deployment is not None:
            model = deployment.upstream_model
            if model == "*":
                wanted = request.model if request is not None else ""
                model = deployment.resolve_model(wanted) if 0 < call.status < 400 else "*"
        team_id = team.team_id if team is not None else (key.team_id if key is not None else None)
        user_id = user.user_id if user is not None else (key.user_id if key is not None else None)
        return (
            end_user,
            key.token_hash if key is not None else "",
            (key.key_alias or "") if key is not None else "",
            team_id or "",
            (team.team_alias or "") if team is not None else "",
            user_id or "",
            model,
            requested,
            deployment.id if deployment is not None else "",
        )


def _failure_class(call: Call) -> str:
    """LiteLLM's class for a failed call: the upstream's own status names an upstream error."""
    error = call.error
    if isinstance(error, BudgetExceeded):
        return "BudgetExceededError"
    deployment = call.deployment
    if isinstance(error, UpstreamError | UpstreamTimeout) and deployment is not None:
        status = error.upstream_status if isinstance(error, UpstreamStatusError) else error.status
        return exception_class(status, deployment.provider)
    return exception_class(call.status)


def _rejection(error: TollwayError) -> tuple[str, str]:
    """(reason, account kind) of a ledger refusal, read from the ledger's message."""
    message = error.message
    if isinstance(error, BudgetExceeded):
        reason = "budget"
    elif "max_parallel_requests" in message:
        reason = "parallel"
    elif "tpm_limit" in message:
        reason = "tpm"
    elif "rpm_limit" in message:
        reason = "rpm"
    else:
        reason = "rate_limit"
    found = _LIMIT_KIND.search(message)
    return reason, found.group(1) if found else "account"


def _counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
    return Counter(name, documentation, (*labels, *_MODEL_ID), registry=None)


def _histogram(name: str, documentation: str, labels: tuple[str, ...]) -> Histogram:
    return Histogram(
        name, documentation, (*labels, *_MODEL_ID), buckets=LATENCY_BUCKETS, registry=None
    )
