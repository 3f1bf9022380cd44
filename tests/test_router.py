"""The route stage: exact groups, aliases, wildcards, and a spread across a group."""

from __future__ import annotations

import pytest

from proxy.config import load_config, parse_config
from proxy.errors import NotFound
from proxy.routing import Router
from proxy.server.settings import Settings
from proxy.upstream.deployment import Deployment
from proxy.upstream.providers import build_deployment

CONFIG = """\
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o-2024-08-06, api_base: "http://a.example/v1"}
    model_info: {id: gpt-4o-a}
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o-2024-08-06, api_base: "http://b.example/v1"}
    model_info: {id: gpt-4o-b}
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o-2024-08-06, api_base: "http://c.example/v1"}
    model_info: {id: gpt-4o-c}
  - model_name: llama
    litellm_params: {model: groq/llama-3.1-8b-instant}
  - model_name: openai/*
    litellm_params: {model: openai/*}
  - model_name: gpt-*
    litellm_params: {model: openai/*}
router_settings:
  model_group_alias: {gpt4: gpt-4o, fast: llama, dangling: nowhere}
"""


def make_router(text: str = CONFIG) -> Router:
    config = parse_config(text, "router.yaml", {})
    deployments = [
        build_deployment(i, entry, config.router_settings, Settings())
        for i, entry in enumerate(config.model_list)
    ]
    return Router(deployments, config.router_settings.model_group_alias)


@pytest.fixture
def router() -> Router:
    return make_router()


def test_exact_model_group_is_chosen(router: Router) -> None:
    deployment, _ = router.pick("llama")
    assert deployment.model_name == "llama"
    assert deployment.provider == "groq"
    assert deployment.api_base == "https://api.groq.com/openai/v1"
    assert deployment.resolve_model("llama") == "llama-3.1-8b-instant"


def test_exact_group_wins_over_a_matching_wildcard(router: Router) -> None:
    deployment, _ = router.pick("gpt-4o")
    assert deployment.model_name == "gpt-4o"
    assert deployment.resolve_model("gpt-4o") == "gpt-4o-2024-08-06"


@pytest.mark.parametrize(
    ("alias", "group"),
    [pytest.param("gpt4", "gpt-4o", id="gpt4"), pytest.param("fast", "llama", id="fast")],
)
def test_alias_resolves_to_its_model_group(router: Router, alias: str, group: str) -> None:
    assert router.pick(alias)[0].model_name == group


@pytest.mark.parametrize(
    ("requested", "group", "upstream"),
    [
        pytest.param("openai/gpt-4.1-mini", "openai/*", "gpt-4.1-mini", id="openai-prefix"),
        pytest.param("openai/o3", "openai/*", "o3", id="openai-short"),
        pytest.param("gpt-3.5-turbo", "gpt-*", "gpt-3.5-turbo", id="bare-gpt"),
        pytest.param("gpt-4o-mini", "gpt-*", "gpt-4o-mini", id="bare-gpt-4o-mini"),
    ],
)
def test_wildcard_groups_serve_any_matching_name(
    router: Router, requested: str, group: str, upstream: str
) -> None:
    deployment, sent = router.pick(requested)
    assert sent == upstream
    assert deployment.model_name == group
    assert deployment.provider == "openai"
    assert deployment.upstream_model == "*"
    assert deployment.resolve_model(requested) == upstream


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("claude-3-opus", id="unknown"),
        pytest.param("GPT-4O", id="case-differs"),
        pytest.param("dangling", id="alias-to-missing-group"),
        pytest.param("groq/llama", id="unconfigured-prefix"),
        pytest.param("x" * 5000, id="huge-name"),
    ],
)
def test_unknown_model_is_not_found(router: Router, model: str) -> None:
    with pytest.raises(NotFound) as info:
        router.pick(model)
    assert info.value.status == 404
    assert info.value.param == "model"
    assert len(info.value.message) < 300


def test_random_pick_spreads_across_every_deployment_of_a_group(router: Router) -> None:
    seen = {router.pick("gpt-4o")[0].id for _ in range(300)}
    assert seen == {"gpt-4o-a", "gpt-4o-b", "gpt-4o-c"}


def test_model_names_lists_concrete_groups_only(router: Router) -> None:
    assert router.model_names() == ["gpt-4o", "llama"]
    assert len(router.deployments()) == 6


def test_deployment_ids_are_stable_and_distinct_without_model_info_id() -> None:
    first = [d.id for d in make_router().deployments()]
    second = [d.id for d in make_router().deployments()]
    assert first == second
    assert len(set(first)) == len(first)


def test_default_config_routes_the_mock_models() -> None:
    config = load_config(None, {})
    deployments = [
        build_deployment(i, e, config.router_settings, Settings())
        for i, e in enumerate(config.model_list)
    ]
    router = Router(deployments)
    deployment, _ = router.pick("mock-gpt")
    assert deployment.provider == "mock"
    assert deployment.resolve_model("mock-gpt") == "mock-gpt"
    with pytest.raises(NotFound):
        router.pick("gpt-4o")


def test_openai_key_in_environment_routes_bare_and_prefixed_names() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "sk-env-key"})
    deployments: list[Deployment] = [
        build_deployment(i, e, config.router_settings, Settings())
        for i, e in enumerate(config.model_list)
    ]
    router = Router(deployments)
    for requested, upstream in (
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o", "gpt-4o"),
        ("o3-mini", "o3-mini"),
        ("mock-gpt", "mock-gpt"),
    ):
        deployment, _ = router.pick(requested)
        assert deployment.resolve_model(requested) == upstream
    assert router.pick("gpt-4o")[0].api_key == "sk-env-key"


def test_alias_to_a_model_served_by_a_wildcard_group_sends_the_alias_target() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "sk-env-key"})
    deployments = [
        build_deployment(i, e, config.router_settings, Settings())
        for i, e in enumerate(config.model_list)
    ]
    router = Router(deployments, {"fast": "gpt-4o-mini"})
    deployment, sent = router.pick("fast")
    assert deployment.model_name == "gpt-*"
    assert deployment.provider == "openai"
    assert sent == "gpt-4o-mini"
