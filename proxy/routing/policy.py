"""Routing policy: the merged settings, what kind of failure an attempt had, and how long to wait.

Settings come from ``router_settings`` first, then ``litellm_settings`` (LiteLLM reads both),
then LiteLLM's defaults. A failure is one of:

    RETRYABLE       429, upstream 5xx, unreachable, timeout  → retry in the group, then fallbacks
    DEPLOYMENT      upstream 401 / 403 / 404 (the gateway's credential or model name is wrong)
                                                             → no retry; fallbacks
    CONTEXT_WINDOW  context length exceeded                  → context_window_fallbacks
    CONTENT_POLICY  content-policy refusal                   → content_policy_fallbacks
    FATAL           any other 4xx, or the gateway's own errors → returned as it is
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

import msgspec

from ..config import Config
from ..errors import (
    NoDeploymentAvailable,
    TollwayError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

_T = TypeVar("_T", int, float)

STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
)

DEFAULT_NUM_RETRIES = 2
DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_S = 5.0
DEFAULT_MAX_FALLBACKS = 5
# First backoff step when ``router_settings.retry_after`` is not set; doubled each retry.
DEFAULT_BACKOFF_S = 0.1
# The longest the gateway waits before one retry (a longer upstream Retry-After is not waited
# for: the request moves on to a fallback, or the client gets the upstream's answer).
MAX_RETRY_WAIT_S = 5.0
# A Retry-After longer than this does not cool a deployment for longer.
MAX_COOLDOWN_S = 600.0
# EWMA weight of the newest latency sample.
EWMA_ALPHA = 0.3


class Failure(enum.Enum):
    RETRYABLE = "retryable"
    DEPLOYMENT = "deployment"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    FATAL = "fatal"


_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})
_CONTEXT_WORDS = ("context length", "context window", "maximum context", "too many tokens")
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_POLICY_WORDS = ("content policy", "content management policy", "content_filter")


def classify(exc: TollwayError) -> Failure:
    if isinstance(exc, UpstreamTimeout | UpstreamUnreachable | NoDeploymentAvailable):
        return Failure.RETRYABLE
    if not isinstance(exc, UpstreamStatusError):
        return Failure.FATAL
    if exc.retryable:
        return Failure.RETRYABLE
    code = exc.code or ""
    message = exc.message.lower()
    if code in _CONTEXT_CODES or any(word in message for word in _CONTEXT_WORDS):
        return Failure.CONTEXT_WINDOW
    if code in _POLICY_CODES or any(word in message for word in _POLICY_WORDS):
        return Failure.CONTENT_POLICY
    if exc.upstream_status in (401, 403, 404):
        return Failure.DEPLOYMENT
    return Failure.FATAL


def counts_against_deployment(exc: TollwayError) -> bool:
    """Failures that say something about the deployment (and so can cool it down)."""
    return classify(exc) in (Failure.RETRYABLE, Failure.DEPLOYMENT) and not isinstance(
        exc, NoDeploymentAvailable
    )


def _fallback_map(entries: Sequence[Mapping[str, Sequence[str]]]) -> dict[str, tuple[str, ...]]:
    merged: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        for group, targets in entry.items():
            merged[group] = tuple(targets)
    return merged


class RoutingSettings(msgspec.Struct, frozen=True, kw_only=True):
    strategy: str = "simple-shuffle"
    num_retries: int = DEFAULT_NUM_RETRIES
    allowed_fails: int = DEFAULT_ALLOWED_FAILS
    cooldown_s: float = DEFAULT_COOLDOWN_S
    backoff_s: float = DEFAULT_BACKOFF_S
    max_fallbacks: int = DEFAULT_MAX_FALLBACKS
    fallbacks: dict[str, tuple[str, ...]] = {}
    context_window_fallbacks: dict[str, tuple[str, ...]] = {}
    content_policy_fallbacks: dict[str, tuple[str, ...]] = {}
    default_fallbacks: tuple[str, ...] = ()
    # None: filter by tags when any deployment of a group has tags.
    tag_filtering: bool | None = None
    latency_buffer: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> RoutingSettings:
        rs, ls = config.router_settings, config.litellm_settings
        strategy = rs.routing_strategy or "simple-shuffle"
        if strategy not in STRATEGIES:
            from ..config import ConfigError

            raise ConfigError(
                f"router_settings.routing_strategy: {strategy!r} is not one of "
                f"{', '.join(STRATEGIES)}"
            )
        args = rs.routing_strategy_args or {}
        buffer = args.get("lowest_latency_buffer", 0.0)
        return cls(
            strategy=strategy,
            num_retries=_first(rs.num_retries, ls.num_retries, DEFAULT_NUM_RETRIES),
            allowed_fails=_first(rs.allowed_fails, None, DEFAULT_ALLOWED_FAILS),
            cooldown_s=_first(rs.cooldown_time, None, DEFAULT_COOLDOWN_S),
            backoff_s=float(rs.retry_after) if rs.retry_after else DEFAULT_BACKOFF_S,
            max_fallbacks=_first(rs.max_fallbacks, None, DEFAULT_MAX_FALLBACKS),
            fallbacks=_fallback_map(rs.fallbacks or ls.fallbacks),
            context_window_fallbacks=_fallback_map(
                rs.context_window_fallbacks or ls.context_window_fallbacks
            ),
            content_policy_fallbacks=_fallback_map(
                rs.content_policy_fallbacks or ls.content_policy_fallbacks
            ),
            default_fallbacks=rs.default_fallbacks or ls.default_fallbacks,
            tag_filtering=rs.enable_tag_filtering,
            latency_buffer=float(buffer) if isinstance(buffer, int | float) else 0.0,
        )

    def fallbacks_for(self, group: str, failure: Failure) -> tuple[str, ...]:
        if failure is Failure.CONTEXT_WINDOW:
            return self.context_window_fallbacks.get(group, ())
        if failure is Failure.CONTENT_POLICY:
            return self.content_policy_fallbacks.get(group, ())
        if failure in (Failure.RETRYABLE, Failure.DEPLOYMENT):
            found = self.fallbacks.get(group)
            if found is None:
                found = self.fallbacks.get("*", self.default_fallbacks)
            return found
        return ()

    def every_fallback(self, group: str) -> tuple[str, ...]:
        """Every group a request to ``group`` may end up on (for the up-front reservation)."""
        seen: list[str] = []
        for failure in (Failure.RETRYABLE, Failure.CONTEXT_WINDOW, Failure.CONTENT_POLICY):
            for name in self.fallbacks_for(group, failure)[: self.max_fallbacks]:
                if name != group and name not in seen:
                    seen.append(name)
        return tuple(seen)


def _first(a: _T | None, b: _T | None, default: _T) -> _T:
    if a is not None:
        return a
    return b if b is not None else default


def backoff_delay(retry: int, base: float, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1-based) on the same deployment.

    Exponential with jitter (half to full of ``base * 2**(retry-1)``), never shorter than the
    upstream's Retry-After, never longer than ``MAX_RETRY_WAIT_S``.
    """
    step = min(MAX_RETRY_WAIT_S, base * (1 << min(retry - 1, 16)))
    delay = step * (0.5 + rng.random() / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_RETRY_WAIT_S)
