"""Observability: one typed event per call, delivered to sinks off the request path."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

# The name that turns LiteLLM's Prometheus logger on, in any of the callback lists.
PROMETHEUS_CALLBACK = "prometheus"


def prometheus_enabled(config: Config) -> bool:
    """Whether the config turns the Prometheus logger on, as LiteLLM reads it (without
    importing ``prometheus_client``: ``proxy.observe.prometheus`` loads only when it is on)."""
    litellm = config.litellm_settings
    return PROMETHEUS_CALLBACK in (
        *litellm.callbacks,
        *litellm.success_callback,
        *litellm.failure_callback,
    )
