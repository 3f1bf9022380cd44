"""A bare model name goes to the provider that serves it (as LiteLLM infers it), never to
OpenAI by default; a name no one can place is refused at start-up."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, LiteLLMParams, ModelEntry, RouterSettings
from proxy.server.settings import Settings
from proxy.upstream.providers import build_deployment


def deploy(model: str, api_base: str | None = None) -> tuple[str, str, str]:
    entry = ModelEntry(model_name="m", litellm_params=LiteLLMParams(model=model, api_base=api_base))
    d = build_deployment(0, entry, RouterSettings(), Settings())
    return d.provider, d.upstream_model, d.api_base


@pytest.mark.parametrize(
    ("model", "provider", "base"),
    [
        ("claude-3-opus-20240229", "anthropic", "https://api.anthropic.com"),
        ("claude-sonnet-4-5", "anthropic", "https://api.anthropic.com"),
        ("command-r", "cohere", "https://api.cohere.com"),
        ("command-a-03-2025", "cohere", "https://api.cohere.com"),
        ("gemini-1.5-pro", "gemini", "https://generativelanguage.googleapis.com/v1beta"),
        ("mistral-large-latest", "mistral", "https://api.mistral.ai/v1"),
        ("codestral-latest", "mistral", "https://api.mistral.ai/v1"),
        ("deepseek-chat", "deepseek", "https://api.deepseek.com/v1"),
        ("grok-4", "xai", "https://api.x.ai/v1"),
        ("llama-3.3-70b-versatile", "groq", "https://api.groq.com/openai/v1"),
        ("gpt-4o", "openai", "https://api.openai.com/v1"),
        ("o3-mini", "openai", "https://api.openai.com/v1"),
        ("text-embedding-3-small", "openai", "https://api.openai.com/v1"),
    ],
)
def test_bare_name_goes_to_its_own_provider(model: str, provider: str, base: str) -> None:
    assert deploy(model) == (provider, model, base)


def test_bare_unknown_name_without_api_base_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="cannot tell the provider of 'my-llama'"):
        deploy("my-llama")


def test_bare_unknown_name_with_an_api_base_is_an_openai_compatible_server() -> None:
    assert deploy("my-llama", "http://127.0.0.1:8000/v1") == (
        "openai",
        "my-llama",
        "http://127.0.0.1:8000/v1",
    )


def test_prefixed_names_are_unchanged() -> None:
    assert deploy("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo")[:2] == (
        "together_ai",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    )
