"""One configured deployment: a model group member, its provider, base URL, key and deadlines."""

from __future__ import annotations

import functools

import msgspec

from ..config import LiteLLMParams, ModelInfo
from .transport import Deadlines

# `auto_router/complexity_router` is not an upstream: the router resolves it to a model group.
AUTO_ROUTER = "auto_router"


class Deployment(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    id: str
    model_name: str
    provider: str
    # The provider's model name; "*" means "the requested name" (wildcard groups).
    upstream_model: str
    api_base: str
    api_key: str | None
    params: LiteLLMParams
    info: ModelInfo
    deadlines: Deadlines

    @functools.cached_property
    def label(self) -> str:
        """``provider/model`` as headers, metrics and spend logs name it (built once)."""
        return f"{self.provider}/{self.upstream_model}"

    def resolve_model(self, requested: str) -> str:
        if self.upstream_model != "*":
            return self.upstream_model
        prefix = self.provider + "/"
        return requested[len(prefix) :] if requested.startswith(prefix) else requested
