"""Routing strategies pick among the usable deployments of a group."""

from __future__ import annotations

from collections import Counter

from proxy.config import parse_config
from proxy.routing import Router

from . import Clock, build_router, group_config


def counts(router: Router, n: int = 2000, **options: object) -> Counter[str]:
    return Counter(router.pick("m", **options)[0].id for _ in range(n))


def test_simple_shuffle_follows_weights() -> None:
    router = build_router(group_config("simple-shuffle", [", weight: 9", ", weight: 1"]))
    seen = counts(router)
    assert 0.85 < seen["d0"] / 2000 < 0.95


def test_simple_shuffle_weighs_by_rpm_without_weight() -> None:
    router = build_router(group_config("simple-shuffle", [", rpm: 100", ", rpm: 300"]))
    seen = counts(router)
    assert 0.68 < seen["d1"] / 2000 < 0.82


def test_least_busy_picks_fewest_in_flight() -> None:
    router = build_router(group_config("least-busy", ["", "", ""]))
    deployments = router.deployments()
    router.started(router.state(deployments[0]))
    router.started(router.state(deployments[1]))
    assert {router.pick("m")[0].id for _ in range(50)} == {"d2"}
    router.started(router.state(deployments[2]))
    router.started(router.state(deployments[2]))
    assert {router.pick("m")[0].id for _ in range(50)} <= {"d0", "d1"}


def test_latency_routing_prefers_lowest_ewma_and_measures_unmeasured_first() -> None:
    router = build_router(group_config("latency-based-routing", ["", ""]))
    d0, d1 = router.deployments()
    router.state(d0).record_latency(0.5, first_token=False)
    assert router.pick("m")[0].id == "d1"  # no sample yet: tried first
    router.state(d1).record_latency(2.0, first_token=False)
    assert {router.pick("m")[0].id for _ in range(50)} == {"d0"}


def test_latency_routing_uses_time_to_first_token_for_streams() -> None:
    router = build_router(group_config("latency-based-routing", ["", ""]))
    d0, d1 = router.deployments()
    for state, latency, ttft in ((router.state(d0), 1.0, 0.9), (router.state(d1), 3.0, 0.1)):
        state.record_latency(latency, first_token=False)
        state.record_latency(ttft, first_token=True)
    assert router.pick("m", stream=False)[0].id == "d0"
    assert router.pick("m", stream=True)[0].id == "d1"


def test_latency_ewma_moves_toward_new_samples() -> None:
    router = build_router(group_config("latency-based-routing", [""]))
    state = router.state(router.deployments()[0])
    state.record_latency(1.0, first_token=False)
    state.record_latency(2.0, first_token=False)
    assert state.latency_ewma is not None
    assert 1.0 < state.latency_ewma < 2.0


def test_usage_based_routing_picks_most_headroom_and_honours_rpm() -> None:
    wall = Clock(60_000.0)
    router = build_router(group_config("usage-based-routing", [", rpm: 10", ", rpm: 4"]), wall=wall)
    picks = []
    for _ in range(14):
        deployment, _ = router.pick("m")
        router.started(router.state(deployment))
        picks.append(deployment.id)
    assert Counter(picks) == {"d0": 10, "d1": 4}
    try:
        router.pick("m")
    except Exception as exc:  # every rpm is used up this minute
        assert getattr(exc, "status", None) == 503
    else:
        raise AssertionError("a pick past every rpm limit must fail")
    wall.now += 60
    assert router.pick("m")[0].id in {"d0", "d1"}


def test_usage_based_routing_honours_tpm() -> None:
    wall = Clock(60_000.0)
    router = build_router(
        group_config("usage-based-routing", [", tpm: 1000", ", tpm: 1000"]), wall=wall
    )
    d0, _ = router.deployments()
    router.state(d0).count_tokens(wall.now, 900)
    assert {router.pick("m")[0].id for _ in range(20)} == {"d1"}


def test_cost_based_routing_picks_the_cheapest() -> None:
    text = """\
model_list:
  - model_name: m
    litellm_params: {model: openai/a}
    model_info: {id: pricey, input_cost_per_token: 0.00001, output_cost_per_token: 0.00003}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: cheap, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
router_settings: {routing_strategy: cost-based-routing}
"""
    router = build_router(text)
    assert {router.pick("m")[0].id for _ in range(30)} == {"cheap"}


def test_unknown_strategy_is_a_config_error() -> None:
    import pytest

    from proxy.config import ConfigError
    from proxy.routing import RoutingSettings

    config = parse_config("router_settings: {routing_strategy: fastest}\n", "x", {})
    with pytest.raises(ConfigError, match="routing_strategy"):
        RoutingSettings.from_config(config)


def test_a_pick_needs_no_event_loop_and_does_no_io() -> None:
    # Picking is plain computation: it runs outside any event loop, many times over.
    router = build_router(group_config("latency-based-routing", ["", "", "", ""]), clock=Clock())
    for _ in range(10_000):
        router.pick("m")
