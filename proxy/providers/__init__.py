"""Provider adapters, chosen by the ``provider/`` prefix of ``litellm_params.model``."""

from __future__ import annotations

import hashlib

from ..config import OPENAI_COMPATIBLE, ConfigError, ModelEntry, RouterSettings
from ..settings import Settings
from ..upstream.transport import Deadlines, Transport
from .anthropic import DEFAULT_BASE as ANTHROPIC_BASE
from .anthropic import AnthropicProvider
from .azure import AzureOpenAI
from .base import Deployment, Provider, ProviderFactory
from .bedrock import BedrockProvider
from .cohere import DEFAULT_BASE as COHERE_BASE
from .cohere import CohereProvider
from .gemini import DEFAULT_BASE as GEMINI_BASE
from .gemini import GeminiProvider
from .mock import MockProvider
from .openai import OpenAICompatible

_FACTORIES: dict[str, ProviderFactory] = {name: OpenAICompatible for name in OPENAI_COMPATIBLE}
_FACTORIES |= {
    "mock": MockProvider,
    "anthropic": AnthropicProvider,
    "bedrock": BedrockProvider,
    "gemini": GeminiProvider,
    "cohere": CohereProvider,
    "azure": AzureOpenAI,
}

SUPPORTED = tuple(sorted(_FACTORIES))

# `auto_router/complexity_router` is not an upstream: the router resolves it to a model group.
AUTO_ROUTER = "auto_router"


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
    if provider not in _FACTORIES and provider != AUTO_ROUTER:
        raise ConfigError(
            f"model_list[{index}].litellm_params.model: provider {provider!r} is not supported "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    api_base = params.api_base
    if not api_base:
        api_base = OPENAI_COMPATIBLE[provider][0] if provider in OPENAI_COMPATIBLE else ""
    if not api_base and provider == "anthropic":
        api_base = ANTHROPIC_BASE
    if not api_base and provider in ("gemini", "cohere"):
        api_base = GEMINI_BASE if provider == "gemini" else COHERE_BASE
    if not api_base and provider == "azure":
        raise ConfigError(
            f"model_list[{index}].litellm_params.api_base: azure/ models need the resource "
            "endpoint, e.g. https://<resource>.openai.azure.com"
        )
    # First byte and whole exchange: the deployment's `timeout`, else the router's, else the
    # gateway's; the idle gap inside a stream: `stream_timeout` likewise, else first byte.
    read = params.timeout or router.timeout or settings.request_timeout_s
    stream_idle = params.stream_timeout or router.stream_timeout
    connect = params.connect_timeout or settings.connect_timeout_s
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
        deadlines=Deadlines(connect=connect, read=read, total=read, stream_idle=stream_idle),
    )


def build_providers(transport: Transport) -> dict[str, Provider]:
    made: dict[ProviderFactory, Provider] = {}
    out: dict[str, Provider] = {}
    for name, factory in _FACTORIES.items():
        if factory not in made:
            made[factory] = factory(transport)
        out[name] = made[factory]
    return out
