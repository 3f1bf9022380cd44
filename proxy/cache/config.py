"""``litellm_settings.cache`` / ``cache_params`` read into ``CacheSettings`` (LiteLLM's shape).

litellm_settings:
  cache: true
  cache_params:
    type: local            # local | redis | local-semantic | redis-semantic
    ttl: 600               # seconds (default: no expiry in Redis, 1 h in memory)
    namespace: team-a      # a prefix for every key
    mode: default_on       # default_off: only requests that say ``use-cache: true``
    scope: team            # team (a key without a team: the key) | global
    host / port / password / redis_url      # redis types
    similarity_threshold: 0.9               # semantic types
    redis_semantic_cache_embedding_model: ...   # not supported (warned about)
    supported_call_types: [acompletion, aembedding, aresponses, anthropic_messages]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

TYPES = ("local", "redis", "local-semantic", "redis-semantic")
# LiteLLM's names for what a call is; the gateway's routes map onto them.
CALL_TYPES = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completion",
    "atext_completion": "completion",
    "embedding": "embedding",
    "aembedding": "embedding",
    "responses": "responses",
    "aresponses": "responses",
    "anthropic_messages": "messages",
}
_KNOWN = {
    "type",
    "ttl",
    "namespace",
    "mode",
    "scope",
    "host",
    "port",
    "password",
    "redis_url",
    "url",
    "ssl",
    "similarity_threshold",
    "redis_semantic_cache_embedding_model",
    "supported_call_types",
    "max_bytes",
}


class CacheConfigError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"litellm_settings.cache_params.{field}: {message}")
        self.field = field


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "local"
    ttl_s: float | None = None
    namespace: str = ""
    default_on: bool = True
    scope_global: bool = False
    redis: dict[str, Any] = msgspec.field(default_factory=dict)
    similarity_threshold: float | None = None
    embedding_model: str | None = None
    call_types: frozenset[str] = frozenset(CALL_TYPES.values())
    max_bytes: int = 64 * 1024 * 1024

    @property
    def semantic(self) -> bool:
        return self.type.endswith("semantic")


def read_settings(
    enabled: bool | None, params: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> tuple[CacheSettings | None, list[str]]:
    """The cache's settings (None when ``cache`` is off) and the names of unknown params."""
    if not enabled:
        return None, []
    params = dict(params or {})
    unknown = sorted(set(params) - _KNOWN)
    kind = params.get("type", "local")
    if kind not in TYPES:
        raise CacheConfigError("type", f"{kind!r} is not a cache type (one of {', '.join(TYPES)})")
    mode = params.get("mode", "default_on")
    if mode not in ("default_on", "default_off"):
        raise CacheConfigError("mode", f"{mode!r} is not default_on or default_off")
    scope = params.get("scope", "team")
    if scope not in ("team", "global"):
        raise CacheConfigError("scope", f"{scope!r} is not team or global")
    call_types = frozenset(CALL_TYPES.values())
    if "supported_call_types" in params:
        named = params["supported_call_types"]
        if not isinstance(named, list) or any(n not in CALL_TYPES for n in named):
            raise CacheConfigError(
                "supported_call_types", f"a list of {', '.join(sorted(CALL_TYPES))}"
            )
        call_types = frozenset(CALL_TYPES[n] for n in named)
    max_bytes = int(environ.get("TOLLWAY_CACHE_MAX_BYTES") or params.get("max_bytes") or 0)
    settings = CacheSettings(
        type=kind,
        ttl_s=_seconds(params.get("ttl")),
        namespace=str(params.get("namespace") or ""),
        default_on=mode == "default_on",
        scope_global=scope == "global",
        redis={
            k: params[k]
            for k in ("host", "port", "password", "redis_url", "url", "ssl")
            if k in params
        },
        similarity_threshold=_threshold(params.get("similarity_threshold")),
        embedding_model=params.get("redis_semantic_cache_embedding_model"),
        call_types=call_types,
        max_bytes=max_bytes or 64 * 1024 * 1024,
    )
    if kind.startswith("redis") and not settings.redis:
        # LiteLLM's fallbacks: the REDIS_* variables.
        found = {
            name: environ[var]
            for name, var in (
                ("redis_url", "REDIS_URL"),
                ("host", "REDIS_HOST"),
                ("port", "REDIS_PORT"),
                ("password", "REDIS_PASSWORD"),
            )
            if environ.get(var)
        }
        settings = msgspec.structs.replace(settings, redis=found)
    if kind.startswith("redis") and not settings.redis:
        raise CacheConfigError("host", "a redis cache needs host/port or redis_url")
    return settings, unknown


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CacheConfigError("ttl", "must be a positive number of seconds")
    return float(value)


def _threshold(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise CacheConfigError("similarity_threshold", "must be a number in (0, 1]")
    return float(value)
