"""The route → admit → call-upstream stages: pick, reserve once, then attempt until one serves.

    resolve the model (aliases, wildcards; the complexity auto-router picks a tier's group)
    → admit once: reserve the most expensive worst case of every deployment the request may
      reach (its group and every fallback group), so no retry or fallback can pass a budget
    → attempt: pick a deployment, send; a stream is only handed back once its first chunk
      arrived, so a failure before the first byte reaches the client can still be retried
    → on failure (see ``policy.classify``): retry in the group (``num_retries``, backoff only
      when the retry must go back to the same deployment), then the fallback groups for that
      kind of failure, at most ``max_fallbacks`` of them.

The attempt that served is the one priced (``call.price``) and named (``call.deployment``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Sequence

import msgspec

from ..auth import Principal
from ..errors import InvalidRequest, NotFound, TollwayError, UpstreamStatusError, UpstreamTimeout
from ..model import ChatReply
from ..observe.trace import new_span_id, new_trace_id, traceparent
from ..pipeline.accounting import Accounting
from ..pipeline.call import Attempt, Call
from ..pipeline.policy import client_fallbacks
from ..request import ParsedRequest
from ..upstream.deployment import Deployment
from ..upstream.engine import Engine, Reply
from ..upstream.mock import RESPONSE_HEADER as MOCK_RESPONSE_HEADER
from ..upstream.stream import StreamOutcome
from ..upstream.transport import Deadlines
from ..usage import estimate_tokens
from . import AUTO_ROUTER, Router
from .complexity import classify as classify_complexity
from .policy import MAX_RETRY_WAIT_S, Failure, backoff_delay, classify
from .region import in_region, require_region
from .state import DeploymentState

log = logging.getLogger("tollway.router")

_CONTENT_FILTERED = re.compile(rb'"finish_reason"\s*:\s*"content_filter"')


class ContentRefused(UpstreamStatusError):
    """A 200 reply that the upstream's content filter cut; raised only to reach a fallback."""

    def __init__(self) -> None:
        super().__init__(
            400, "the upstream's content filter refused the request", code="content_filter"
        )


class Plan:
    """What admission decided: the model group to try, the request's routing tags, and the
    region its end user is restricted to (None: any)."""

    __slots__ = ("group", "model", "region", "tags")

    def __init__(
        self,
        model: str,
        group: Sequence[Deployment],
        tags: tuple[str, ...],
        region: str | None = None,
    ) -> None:
        self.model = model
        self.group = group
        self.tags = tags
        self.region = region


# Groups whose fallbacks are kept worked out before the memo starts over.
_MAX_GROUPS = 4096


class Dispatcher:
    def __init__(self, router: Router, engine: Engine, accounting: Accounting) -> None:
        self.router = router
        self.engine = engine
        self.accounting = accounting
        self.settings = router.settings
        # Every group a request to a group may fall back to, worked out once per group (the
        # settings are this dispatcher's for its life: a reload builds a new one).
        self._every_fallback: dict[str, tuple[str, ...]] = {}
        self._rng = random.Random()
        # Set by the composition root when a tracing sink (OpenTelemetry) is configured.
        self.trace = False
        # Counters since start, by requested model group, for /metrics.
        self.retries: dict[str, int] = {}
        self.fallbacks: dict[str, int] = {}

    async def __call__(self, call: Call, principal: Principal, request: ParsedRequest) -> Reply:
        """Route, admit and call: the two stages below, back to back."""
        return await self.run(call, request, self.admit(call, principal, request))

    def admit(self, call: Call, principal: Principal, request: ParsedRequest) -> Plan:
        """Resolve the model group and reserve the call's worst case on every budget; no I/O,
        so stages that must run before the upstream (pre-call guardrails) sit between this and
        ``run`` with the reservation already held."""
        router = self.router
        model, group = router.resolve(request.model)
        if group[0].provider == AUTO_ROUTER:
            tiers = router.tier_map(group[0])
            assert tiers is not None
            tier = classify_complexity(request)
            call.complexity_tier = tier.value
            model, group = router.resolve(tiers.model_for(tier))
        region: str | None = None
        hierarchy = self.accounting.hierarchy
        if hierarchy is not None and hierarchy.regions:
            # Only when some end user has an allowed_model_region: its calls go to that
            # region's deployments, every fallback included, or nowhere.
            end_user = call.end_user or request.end_user()
            region = hierarchy.regions.get(end_user) if end_user else None
            if region is not None:
                group = require_region(model, group, region)
        tags = _request_tags(call, request)
        reachable = self._reachable(model, group, client_fallbacks(request), region)
        self.accounting.admit_chain(call, principal, reachable)
        return Plan(model, group, tags, region)

    async def run(self, call: Call, request: ParsedRequest, plan: Plan) -> Reply:
        """The attempts: retries in the group, then fallbacks, until one serves."""
        return await self._run(call, request, plan.model, plan.group, plan.tags, plan.region)

    def _reachable(
        self,
        model: str,
        group: Sequence[Deployment],
        client: tuple[str, ...] = (),
        region: str | None = None,
    ) -> list[tuple[Deployment, str]]:
        out = [(d, d.resolve_model(model)) for d in group]
        every = self._every_fallback.get(model)
        if every is None:
            if len(self._every_fallback) >= _MAX_GROUPS:
                self._every_fallback.clear()  # wildcard groups: any number of model names
            every = self._every_fallback[model] = self.settings.every_fallback(model)
        for name in (*client, *every):
            try:
                target, members = self.router.resolve(name)
            except NotFound:
                continue
            if region is not None:
                members = in_region(members, region)
            out.extend((d, d.resolve_model(target)) for d in members if d.provider != AUTO_ROUTER)
        return out

    async def _run(
        self,
        call: Call,
        request: ParsedRequest,
        model: str,
        group: Sequence[Deployment],
        tags: tuple[str, ...],
        region: str | None = None,
    ) -> Reply:
        settings = self.settings
        chain: tuple[str, ...] | None = None
        kind: Failure | None = None
        position = 0
        current, members = model, group
        client = client_fallbacks(request)
        # LiteLLM's ``mock_testing_fallbacks``: the first group counts as failed, untried.
        forced = bool(getattr(request.typed, "mock_testing_fallbacks", False))
        while True:
            try:
                if forced:
                    forced = False
                    raise UpstreamStatusError(
                        500, "mock_testing_fallbacks: the first model group is treated as failed"
                    )
                return await self._try_group(
                    call, request, current, members, tags, kind, chain, position, model
                )
            except TollwayError as exc:
                failure = classify(exc)
                if failure is Failure.FATAL:
                    raise
                if chain is None:
                    kind = failure
                    chain = client or settings.fallbacks_for(model, failure)
                    chain = chain[: settings.max_fallbacks]
                while True:
                    if position >= len(chain):
                        raise
                    name = chain[position]
                    position += 1
                    try:
                        current, members = self.router.resolve(name)
                    except NotFound:
                        log.warning("fallback %r of %r is not a configured model", name, model)
                        continue
                    if region is not None:
                        # A fallback group with nothing in the end user's region is skipped.
                        members = in_region(members, region)
                        if not members:
                            continue
                    break
                call.attempted_fallbacks += 1
                self.fallbacks[model] = self.fallbacks.get(model, 0) + 1

    async def _try_group(
        self,
        call: Call,
        request: ParsedRequest,
        model: str,
        group: Sequence[Deployment],
        tags: tuple[str, ...],
        kind: Failure | None,
        chain: tuple[str, ...] | None,
        position: int,
        requested: str,
    ) -> Reply:
        """Attempts on one model group: the first, then up to ``num_retries`` retries."""
        router = self.router
        settings = self.settings
        skip = self._too_small(request, model, group, requested, kind)
        if skip is not None and len(skip) == len(group):
            raise UpstreamStatusError(
                400,
                f"the prompt is longer than every deployment of {model!r} accepts",
                code="context_length_exceeded",
            )
        members = group if not skip else [d for d in group if id(d) not in skip]
        refusal_fallback = self._refusal_may_fall_back(requested, kind, chain, position)
        failed: set[int] = set()
        retries = 0
        # LiteLLM's ``mock_testing_rate_limit_error``: the first attempt answers a 429.
        mock_429 = kind is None and bool(
            getattr(request.typed, "mock_testing_rate_limit_error", False)
        )
        while True:
            state = router.choose(model, members, tags=tags, exclude=failed, stream=request.stream)
            deployment = state.deployment
            allowed = deployment.params.max_retries
            if allowed is None:
                allowed = settings.num_retries
            call.max_retries = allowed
            try:
                if mock_429:
                    mock_429 = False
                    raise UpstreamStatusError(
                        429, "mock_testing_rate_limit_error: a rate limit, as asked"
                    )
                return await self._attempt(
                    call, request, state, deployment.resolve_model(model), refusal_fallback
                )
            except TollwayError as exc:
                if classify(exc) is not Failure.RETRYABLE or retries >= allowed:
                    raise
                retries += 1
                failed.add(id(deployment))
                wait = self._wait_before_retry(members, failed, state, exc, retries)
                if wait is None:
                    raise
                call.attempted_retries += 1
                self.retries[requested] = self.retries.get(requested, 0) + 1
                if wait > 0:
                    started = time.perf_counter()
                    await asyncio.sleep(wait)
                    call.upstream_s += time.perf_counter() - started

    def _wait_before_retry(
        self,
        members: Sequence[Deployment],
        failed: set[int],
        state: DeploymentState,
        exc: TollwayError,
        retries: int,
    ) -> float | None:
        """Seconds to wait before the next attempt; None when retrying is pointless.

        No wait when a sibling is usable now; the backoff (at least the upstream's
        Retry-After) when going back to the same deployment; the rest of a cooldown only when
        the upstream said when to come back (a 429's Retry-After) and that is soon enough.
        """
        router = self.router
        if len(failed) < len(members):
            others = [d for d in members if id(d) not in failed]
            if router.soonest_usable(others) == 0.0:
                return 0.0
        retry_after = exc.retry_after_s if isinstance(exc, UpstreamStatusError) else None
        if retry_after is not None and retry_after > MAX_RETRY_WAIT_S:
            return None
        delay = backoff_delay(retries, self.settings.backoff_s, retry_after, self._rng)
        cooling = router.soonest_usable(members)
        if cooling == 0.0:
            return delay
        if retry_after is None or cooling > MAX_RETRY_WAIT_S:
            return None
        # A hair past the cooldown's end: the loop may wake a timer slightly early.
        return max(delay, cooling + 0.01)

    def _too_small(
        self,
        request: ParsedRequest,
        model: str,
        group: Sequence[Deployment],
        requested: str,
        kind: Failure | None,
    ) -> set[int] | None:
        """Deployments whose max_input_tokens the prompt estimate exceeds, when a context-window
        fallback exists to go to (without one the upstream has the last word)."""
        if kind is None:
            if not self.settings.context_window_fallbacks.get(requested):
                return None
        elif kind is not Failure.CONTEXT_WINDOW:
            return None
        prompt = estimate_tokens(request.prompt_bytes)
        price_of = self.accounting.price_of
        small: set[int] | None = None
        for deployment in group:
            limit = price_of(deployment, deployment.resolve_model(model)).max_input_tokens
            if limit is not None and prompt > limit:
                if small is None:
                    small = set()
                small.add(id(deployment))
        return small

    def _refusal_may_fall_back(
        self, requested: str, kind: Failure | None, chain: tuple[str, ...] | None, position: int
    ) -> bool:
        if kind is None:
            return bool(self.settings.content_policy_fallbacks.get(requested))
        return kind is Failure.CONTENT_POLICY and chain is not None and position < len(chain)

    async def _attempt(
        self,
        call: Call,
        request: ParsedRequest,
        state: DeploymentState,
        upstream_model: str,
        refusal_fallback: bool,
    ) -> Reply:
        router = self.router
        deployment = state.deployment
        call.deployment = deployment
        call.price = self.accounting.price_of(deployment, upstream_model)
        target = deployment
        timeout = _request_timeout(call)
        if timeout is not None:
            # LiteLLM's ``x-litellm-timeout``: this request's deadline, on every phase.
            deadlines = deployment.deadlines
            target = msgspec.structs.replace(
                deployment,
                deadlines=Deadlines(
                    connect=min(deadlines.connect, timeout),
                    read=timeout,
                    total=timeout,
                    stream_idle=timeout,
                ),
            )
        call.timeout_s = target.deadlines.read
        if getattr(request.typed, "mock_timeout", False):
            # LiteLLM's ``mock_timeout``: the attempt times out without reaching the upstream
            # (and without counting against the deployment).
            raise UpstreamTimeout(f"mock_timeout: no answer within {call.timeout_s} s")
        router.started(state)
        # Tracing (only with a tracing sink): the attempt gets a span id, sent upstream as the
        # parent of whatever the upstream traces, and is recorded on the call.
        span_id = new_span_id() if self.trace else None
        started = time.perf_counter()
        call.reached_upstream = True
        extra: dict[str, str] | None = None
        mock_response = getattr(request.typed, "mock_response", None)
        if mock_response is not None:
            # LiteLLM's ``mock_response``: the built-in mock answers, billed as this model
            # (the canned text goes in the mock's header, not in the cached request head).
            target = msgspec.structs.replace(target, provider="mock")
            extra = {MOCK_RESPONSE_HEADER: mock_response}
        try:
            if span_id is None and extra is None:
                reply = await self.engine.send(request, target, upstream_model)
            else:
                trace = {} if span_id is None else _trace_headers(call, span_id)
                reply = await self.engine.send(
                    request, target, upstream_model, {**trace, **(extra or {})}
                )
            if reply.stream is not None:
                # Handed back only once its first chunk arrived: a failure before any byte
                # reached the client can still be retried.
                await reply.stream.prime()
        except TollwayError as exc:
            router.failed(state, exc, time.perf_counter() - started)
            if span_id is not None:
                _record(call, deployment, started, _upstream_status(exc), span_id, exc.type)
            raise
        except BaseException:
            router.finished(state, status=499)
            if span_id is not None:
                _record(call, deployment, started, 0, span_id, "cancelled")
            raise
        finally:
            call.upstream_s += time.perf_counter() - started
        elapsed = time.perf_counter() - started
        if reply.stream is None:
            usage = reply.usage
            tokens = usage.total_tokens if usage is not None else 0
            router.finished(state, status=reply.status, tokens=tokens, latency=elapsed)
            if span_id is not None:
                _record(call, deployment, started, reply.status, span_id)
            if (
                refusal_fallback
                and _content_filtered(reply)
                and self.accounting.bill_failed_attempt(call, deployment, upstream_model, usage)
            ):
                raise ContentRefused()
            return reply
        state.record_latency(elapsed, first_token=True)
        reply.stream.on_close(lambda outcome: self._stream_closed(state, outcome, started))
        if span_id is not None:
            # The attempt lasts until its stream closes (before settle reads the call).
            reply.stream.on_close(
                lambda outcome: _record(
                    call,
                    deployment,
                    started,
                    _upstream_status(outcome.error) if outcome.error is not None else 200,
                    span_id,
                    _stream_error(outcome),
                )
            )
        return reply

    def _stream_closed(
        self, state: DeploymentState, outcome: StreamOutcome, started: float
    ) -> None:
        """Tells the router how a stream ended (its one close path calls this)."""
        if outcome.error is not None:
            self.router.failed(state, outcome.error, time.perf_counter() - started)
            return
        usage = outcome.usage
        self.router.finished(
            state,
            status=200 if outcome.completed else 499,
            tokens=usage.total_tokens if usage is not None else 0,
        )


def _request_timeout(call: Call) -> float | None:
    raw = call.timeout_header
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise InvalidRequest(
            "x-litellm-timeout must be a number of seconds in (0, 3600]", param="x-litellm-timeout"
        )
    return value


def _trace_headers(call: Call, span_id: str) -> dict[str, str]:
    """The W3C headers for one attempt: the call's trace (continued or new), this span."""
    if call.trace_id is None:
        call.trace_id = new_trace_id()
    headers = {"traceparent": traceparent(call.trace_id, span_id, call.trace_flags)}
    if call.trace_state is not None:
        headers["tracestate"] = call.trace_state
    return headers


def _record(
    call: Call,
    deployment: Deployment,
    started: float,
    status: int,
    span_id: str,
    error_type: str | None = None,
) -> None:
    attempt = Attempt(deployment.label, started, time.perf_counter(), status, span_id, error_type)
    if call.attempts is None:
        call.attempts = [attempt]
    else:
        call.attempts.append(attempt)


def _upstream_status(exc: TollwayError) -> int:
    """The status the upstream answered; 0 when it never answered (timeout, unreachable)."""
    return exc.upstream_status if isinstance(exc, UpstreamStatusError) else 0


def _stream_error(outcome: StreamOutcome) -> str | None:
    if outcome.error is not None:
        return outcome.error.type
    return None if outcome.completed else "cancelled"


def _content_filtered(reply: Reply) -> bool:
    if reply.body is not None:
        return _CONTENT_FILTERED.search(reply.body) is not None
    typed = reply.typed
    return isinstance(typed, ChatReply) and any(
        choice.finish_reason == "content_filter" for choice in typed.choices
    )


def _request_tags(call: Call, request: ParsedRequest) -> tuple[str, ...]:
    """Tags from the ``x-tollway-tags`` header (comma-separated) and ``metadata.tags``."""
    tags: list[str] = []
    header = call.tags_header
    if header:
        tags.extend(t.strip() for t in header.split(",") if t.strip())
    metadata = request.metadata()
    if metadata:
        found = metadata.get("tags")
        if isinstance(found, list):
            tags.extend(str(t) for t in found)
    return tuple(tags)
