"""Failure classes, backoff, settings merged from router_settings and litellm_settings."""

from __future__ import annotations

import random

import pytest

from proxy.config import parse_config
from proxy.errors import (
    InvalidRequest,
    NoDeploymentAvailable,
    TollwayError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from proxy.routing.policy import (
    MAX_RETRY_WAIT_S,
    Failure,
    RoutingSettings,
    backoff_delay,
    classify,
)


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        pytest.param(UpstreamStatusError(429, "slow"), Failure.RETRYABLE, id="429"),
        pytest.param(
            UpstreamStatusError(502, "x", code="500", upstream_status=500),
            Failure.RETRYABLE,
            id="5xx",
        ),
        pytest.param(UpstreamTimeout("t"), Failure.RETRYABLE, id="timeout"),
        pytest.param(UpstreamUnreachable("u"), Failure.RETRYABLE, id="unreachable"),
        pytest.param(NoDeploymentAvailable("n"), Failure.RETRYABLE, id="all-cooling"),
        pytest.param(UpstreamStatusError(400, "bad"), Failure.FATAL, id="400"),
        pytest.param(UpstreamStatusError(422, "bad"), Failure.FATAL, id="422"),
        pytest.param(UpstreamStatusError(401, "key"), Failure.DEPLOYMENT, id="401"),
        pytest.param(UpstreamStatusError(403, "no"), Failure.DEPLOYMENT, id="403"),
        pytest.param(UpstreamStatusError(404, "model"), Failure.DEPLOYMENT, id="404"),
        pytest.param(
            UpstreamStatusError(400, "x", code="context_length_exceeded"),
            Failure.CONTEXT_WINDOW,
            id="context-code",
        ),
        pytest.param(
            UpstreamStatusError(400, "This model's maximum context length is 8192 tokens"),
            Failure.CONTEXT_WINDOW,
            id="context-message",
        ),
        pytest.param(
            UpstreamStatusError(400, "x", code="content_policy_violation"),
            Failure.CONTENT_POLICY,
            id="policy-code",
        ),
        pytest.param(
            UpstreamStatusError(400, "x", code="content_filter"),
            Failure.CONTENT_POLICY,
            id="azure-filter",
        ),
        pytest.param(InvalidRequest("bad"), Failure.FATAL, id="gateway-400"),
        pytest.param(TollwayError("bug"), Failure.FATAL, id="internal"),
    ],
)
def test_failures_are_classified(exc: TollwayError, failure: Failure) -> None:
    assert classify(exc) is failure


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for retry in range(1, 6):
        delay = backoff_delay(retry, 0.1, None, rng)
        step = 0.1 * 2 ** (retry - 1)
        assert step / 2 <= delay <= step
    assert backoff_delay(30, 0.1, None, rng) <= MAX_RETRY_WAIT_S


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert backoff_delay(1, 0.1, 2.0, rng) == 2.0
    assert backoff_delay(1, 0.1, 60.0, rng) == MAX_RETRY_WAIT_S


def test_settings_merge_router_and_litellm_settings() -> None:
    config = parse_config(
        """\
router_settings:
  num_retries: 4
  fallbacks: [{a: [b, c]}]
  allowed_fails: 1
  cooldown_time: 9
  max_fallbacks: 1
litellm_settings:
  num_retries: 7
  context_window_fallbacks: [{a: [big]}]
  default_fallbacks: [safe]
""",
        "x",
        {},
    )
    settings = RoutingSettings.from_config(config)
    assert settings.num_retries == 4
    assert settings.allowed_fails == 1
    assert settings.cooldown_s == 9
    assert settings.fallbacks_for("a", Failure.RETRYABLE) == ("b", "c")
    assert settings.fallbacks_for("other", Failure.RETRYABLE) == ("safe",)
    assert settings.fallbacks_for("a", Failure.CONTEXT_WINDOW) == ("big",)
    assert settings.fallbacks_for("a", Failure.FATAL) == ()
    assert settings.every_fallback("a") == ("b", "big")  # max_fallbacks: 1 per kind


def test_defaults_are_litellms() -> None:
    settings = RoutingSettings.from_config(parse_config("{}\n", "x", {}))
    assert settings.num_retries == 2
    assert settings.allowed_fails == 3
    assert settings.cooldown_s == 5
    assert settings.max_fallbacks == 5
