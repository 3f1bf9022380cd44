"""The cache as configured: settings read, the store chosen, the semantic layer attached."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..clock import Clock
from ..config import Config, ConfigError
from .config import CacheConfigError, read_settings
from .stage import Cache
from .store import CacheStore, LocalStore

log = logging.getLogger("tollway.cache")


def build_cache(config: Config, environ: Mapping[str, str], clock: Clock) -> Cache | None:
    """The configured cache, or None (the stage then does not exist on the request path)."""
    litellm = config.litellm_settings
    try:
        settings, unknown = read_settings(litellm.cache, litellm.cache_params, environ)
    except CacheConfigError as exc:
        raise ConfigError(str(exc)) from None
    for name in unknown:
        log.warning("litellm_settings.cache_params.%s is not supported and is ignored", name)
    if settings is None:
        return None
    store: CacheStore
    if settings.type.startswith("redis"):
        from .redis_store import RedisStore

        store = RedisStore.from_params(settings.redis)
    else:
        store = LocalStore(settings.max_bytes, clock.time)
    semantic = None
    if settings.embedding_model:
        log.warning(
            "litellm_settings.cache_params.redis_semantic_cache_embedding_model (%s) is not "
            "supported: the semantic cache embeds with its built-in local model",
            settings.embedding_model,
        )
    if settings.semantic:
        from .semantic.layer import build_semantic

        semantic = build_semantic(settings, environ, clock, store)
    return Cache(settings, store, clock.time, semantic)
