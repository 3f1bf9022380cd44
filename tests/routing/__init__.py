"""Routing tests: helpers to build a router from config text with a controllable clock."""

from __future__ import annotations

import random

from proxy.config import parse_config
from proxy.pricing import ModelPrice
from proxy.routing import Router, RoutingSettings
from proxy.server.settings import Settings
from proxy.upstream.deployment import Deployment
from proxy.upstream.providers import build_deployment


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build_router(text: str, clock: Clock | None = None, wall: Clock | None = None) -> Router:
    config = parse_config(text, "test.yaml", {})
    deployments = [
        build_deployment(i, entry, config.router_settings, Settings())
        for i, entry in enumerate(config.model_list)
    ]

    def price_of(deployment: Deployment, upstream_model: str) -> ModelPrice:
        info = deployment.info
        return ModelPrice(
            input_cost_per_token=info.input_cost_per_token or 0.0,
            output_cost_per_token=info.output_cost_per_token or 0.0,
            max_input_tokens=info.max_input_tokens,
        )

    return Router(
        deployments,
        config.router_settings.model_group_alias,
        settings=RoutingSettings.from_config(config),
        price_of=price_of,
        clock=clock or Clock(),
        wall=wall or Clock(60_000.0),
        rng=random.Random(7),
    )


def group_config(strategy: str, entries: list[str], extra: str = "") -> str:
    lines = ["model_list:"]
    for i, params in enumerate(entries):
        lines += [
            "  - model_name: m",
            f"    litellm_params: {{model: openai/m{i}, api_base: 'http://d{i}.invalid/v1'{params}}}",
            f"    model_info: {{id: d{i}}}",
        ]
    lines += ["router_settings:", f"  routing_strategy: {strategy}"]
    return "\n".join(lines) + "\n" + extra
