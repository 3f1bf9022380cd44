"""Cooldowns: failures in a minute or a 429 take a deployment out of every pick for a while."""

from __future__ import annotations

import pytest

from proxy.errors import NoDeploymentAvailable, UpstreamStatusError, UpstreamTimeout

from . import Clock, build_router, group_config

SETTINGS = "  allowed_fails: 2\n  cooldown_time: 30\n"


def fail(router, deployment, exc=None) -> None:  # type: ignore[no-untyped-def]
    state = router.state(deployment)
    router.started(state)
    router.failed(state, exc or UpstreamTimeout("slow"), 1.0)


def test_more_than_allowed_fails_in_a_minute_cools_the_deployment() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", ["", ""], SETTINGS), clock=clock)
    d0, _ = router.deployments()
    fail(router, d0)
    fail(router, d0)
    assert not router.state(d0).cooling(clock.now)
    fail(router, d0)
    assert router.state(d0).cooling(clock.now)
    assert {router.pick("m")[0].id for _ in range(50)} == {"d1"}
    clock.now += 31
    assert {router.pick("m")[0].id for _ in range(200)} == {"d0", "d1"}


def test_failures_older_than_a_minute_do_not_count() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", ["", ""], SETTINGS), clock=clock)
    d0, _ = router.deployments()
    fail(router, d0)
    fail(router, d0)
    clock.now += 61
    fail(router, d0)
    assert not router.state(d0).cooling(clock.now)


def test_a_single_429_cools_for_the_upstreams_retry_after() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", ["", ""], SETTINGS), clock=clock)
    d0, _ = router.deployments()
    fail(router, d0, UpstreamStatusError(429, "slow down", retry_after="7"))
    assert router.state(d0).cooling(clock.now)
    clock.now += 6.9
    assert router.state(d0).cooling(clock.now)
    clock.now += 0.2
    assert not router.state(d0).cooling(clock.now)


def test_a_429_without_retry_after_cools_for_cooldown_time() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", [""], SETTINGS), clock=clock)
    (d0,) = router.deployments()
    fail(router, d0, UpstreamStatusError(429, "slow down"))
    clock.now += 29
    assert router.state(d0).cooling(clock.now)


def test_every_deployment_cooling_is_503_with_retry_after() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", ["", ""], SETTINGS), clock=clock)
    for deployment in router.deployments():
        fail(router, deployment, UpstreamStatusError(429, "slow down", retry_after="12"))
    clock.now += 2
    with pytest.raises(NoDeploymentAvailable) as info:
        router.pick("m")
    assert info.value.status == 503
    assert info.value.headers["retry-after"] == "10"


def test_client_errors_never_cool_a_deployment() -> None:
    clock = Clock()
    router = build_router(group_config("simple-shuffle", [""], SETTINGS), clock=clock)
    (d0,) = router.deployments()
    for _ in range(10):
        fail(router, d0, UpstreamStatusError(400, "bad request"))
    assert not router.state(d0).cooling(clock.now)
    assert router.state(d0).in_flight == 0


def test_cooldown_time_zero_turns_cooldowns_off() -> None:
    clock = Clock()
    text = group_config("simple-shuffle", [""], "  allowed_fails: 0\n  cooldown_time: 0\n")
    router = build_router(text, clock=clock)
    (d0,) = router.deployments()
    fail(router, d0, UpstreamStatusError(429, "slow down", retry_after="5"))
    fail(router, d0)
    assert not router.state(d0).cooling(clock.now)
