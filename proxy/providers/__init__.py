"""Provider adapters, chosen by the ``provider/`` prefix of ``litellm_params.model``."""

from __future__ import annotations

import hashlib

from ..config import OPENAI_COMPATIBLE, ConfigError, ModelEntry, RouterSettings
from ..settings import Settings
from ..upstream import Deadlines, Transport
from .base import Deployment, Provider
from .mock import MockProvider
from .openai import OpenAICompatible

_FACTORIES = {name: OpenAICompatible for name in OPENAI_COMPATIBLE} | {"mock": MockProvider}

SUPPORTED = tuple(sorted(_FACTORIES))


def split_model(model: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` → ``("openai", "gpt-4o")``; a bare name is OpenAI's."""
    provider, sep, name = model.partition("/")
    if not sep:
        return "openai", model
    return provider, name


def build_deployment(
    index: int, entry: ModelEntry, router: RouterSettings, settings: Settings
) -> Deployment:
    params = entry.litellm_params
    provider, name = split_model(params.model)
    if params.custom_llm_provider:
        provider, name = params.custom_llm_provider, params.model
    if provider not in _FACTORIES:
        raise ConfigError(
            f"model_list[{index}].litellm_params.model: provider {provider!r} is not supported "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    api_base = params.api_base
    if not api_base:
        api_base = OPENAI_COMPATIBLE[provider][0] if provider in OPENAI_COMPATIBLE else ""
    read = params.timeout or router.timeout or settings.request_timeout_s
    if entry.model_info.id:
        ident = entry.model_info.id
    else:
        ident = hashlib.sha256(f"{index}:{entry.model_name}:{params.model}".encode()).hexdigest()
        ident = ident[:16]
    return Deployment(
        id=ident,
        model_name=entry.model_name,
        provider=provider,
        upstream_model=name,
        api_base=api_base,
        api_key=params.api_key,
        params=params,
        info=entry.model_info,
        deadlines=Deadlines(connect=settings.connect_timeout_s, read=read, total=read),
    )


def build_providers(transport: Transport) -> dict[str, Provider]:
    made: dict[type, Provider] = {}
    out: dict[str, Provider] = {}
    for name, factory in _FACTORIES.items():
        if factory not in made:
            made[factory] = factory(transport)
        out[name] = made[factory]
    return out
