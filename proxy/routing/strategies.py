"""Routing strategies: choose one of the usable deployments of a group. No I/O, no awaits.

Each takes the candidates (never empty, all usable right now) and returns one of them. Ties
are broken at random so equal deployments share the load.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .state import DeploymentState

Strategy = Callable[["PickContext", Sequence[DeploymentState]], DeploymentState]


class PickContext:
    """What a strategy may look at besides the candidates."""

    __slots__ = ("latency_buffer", "price", "rng", "stream", "wall")

    def __init__(
        self,
        rng: random.Random,
        price: Callable[[DeploymentState], float],
        latency_buffer: float,
    ) -> None:
        self.rng = rng
        self.price = price
        self.latency_buffer = latency_buffer
        self.stream = False
        self.wall = 0.0


def _weight(state: DeploymentState) -> float:
    params = state.deployment.params
    for value in (params.weight, params.rpm, params.tpm):
        if value is not None:
            return float(value)
    return 1.0


def simple_shuffle(ctx: PickContext, candidates: Sequence[DeploymentState]) -> DeploymentState:
    """Random, weighted by ``weight`` (else ``rpm``, else ``tpm``, else equal)."""
    if len(candidates) == 1:
        return candidates[0]
    weights = [_weight(s) for s in candidates]
    total = sum(weights)
    if total <= 0:
        return ctx.rng.choice(candidates)
    point = ctx.rng.random() * total
    for state, weight in zip(candidates, weights, strict=True):
        point -= weight
        if point < 0:
            return state
    return candidates[-1]


def _lowest(
    ctx: PickContext,
    candidates: Sequence[DeploymentState],
    key: Callable[[DeploymentState], float],
    slack: float = 0.0,
) -> DeploymentState:
    best = min(key(s) for s in candidates)
    limit = best + slack
    ties = [s for s in candidates if key(s) <= limit]
    return ties[0] if len(ties) == 1 else ctx.rng.choice(ties)


def least_busy(ctx: PickContext, candidates: Sequence[DeploymentState]) -> DeploymentState:
    """Fewest requests in flight through this gateway."""
    return _lowest(ctx, candidates, lambda s: s.in_flight)


def lowest_latency(ctx: PickContext, candidates: Sequence[DeploymentState]) -> DeploymentState:
    """Lowest EWMA of time to first token (streams) or of latency (other calls).

    A deployment without a sample yet scores 0, so every deployment gets measured.
    """
    if ctx.stream:
        key: Callable[[DeploymentState], float] = lambda s: s.ttft_ewma or 0.0  # noqa: E731
    else:
        key = lambda s: s.latency_ewma or 0.0  # noqa: E731
    best = min(key(s) for s in candidates)
    return _lowest(ctx, candidates, key, best * ctx.latency_buffer)


def most_headroom(ctx: PickContext, candidates: Sequence[DeploymentState]) -> DeploymentState:
    """Most free rpm/tpm this minute; an unlimited deployment counts as fully free.

    The router has already removed deployments whose rpm or tpm is used up.
    """
    wall = ctx.wall

    def used(state: DeploymentState) -> float:
        free = state.headroom(wall)
        return 0.0 if free is None else 1.0 - free

    return _lowest(ctx, candidates, used)


def cheapest(ctx: PickContext, candidates: Sequence[DeploymentState]) -> DeploymentState:
    """Lowest price per token (input + output) from the price table and model_info."""
    return _lowest(ctx, candidates, ctx.price)


STRATEGY_FUNCTIONS: dict[str, Strategy] = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "latency-based-routing": lowest_latency,
    "usage-based-routing": most_headroom,
    "usage-based-routing-v2": most_headroom,
    "cost-based-routing": cheapest,
}
