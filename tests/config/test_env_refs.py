"""Environment references fail closed: an unset variable stops start-up naming it."""

from __future__ import annotations

import logging

import pytest

from proxy.config import ConfigError, parse_config

MODEL = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        pytest.param(
            "general_settings:\n  master_key: os.environ/UNSET_VAR\n",
            "general_settings.master_key",
            2,
            id="master-key",
        ),
        pytest.param(
            "general_settings:\n  database_url: os.environ/UNSET_VAR\n",
            "general_settings.database_url",
            2,
            id="database-url",
        ),
        pytest.param(
            "router_settings:\n  redis_url: ${UNSET_VAR}\n",
            "router_settings.redis_url",
            2,
            id="redis-url-braced",
        ),
        pytest.param(
            "litellm_settings:\n  cache: true\n  cache_params:\n"
            "    password: os.environ/UNSET_VAR\n",
            "litellm_settings.cache_params.password",
            4,
            id="cache-redis-password",
        ),
        pytest.param(
            MODEL + "      api_key: os.environ/UNSET_VAR\n",
            "model_list[0].litellm_params.api_key",
            5,
            id="provider-key",
        ),
    ],
)
def test_an_unset_variable_stops_start_up_naming_it_and_its_field(
    text: str, field: str, line: int
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", {})
    message = str(info.value)
    assert "UNSET_VAR" in message
    assert f"{field} (line {line})" in message
    assert "\n" not in message


def test_an_empty_variable_counts_as_unset_so_auth_is_never_silently_off() -> None:
    with pytest.raises(ConfigError, match="MASTER"):
        parse_config("general_settings:\n  master_key: os.environ/MASTER\n", "c", {"MASTER": ""})


def test_braced_references_are_read_like_os_environ_ones() -> None:
    text = (
        MODEL
        + "      api_key: ${KEY}\n      api_base: http://${HOST}:8000/v1\n"
        + "general_settings:\n  master_key: ${MASTER}\n"
    )
    env = {"KEY": "sk-up", "HOST": "10.0.0.5", "MASTER": "sk-master"}
    config = parse_config(text, "c", env)
    params = config.model_list[0].litellm_params
    assert params.api_key == "sk-up"
    assert params.api_base == "http://10.0.0.5:8000/v1"
    assert config.general_settings.master_key == "sk-master"


def test_a_missing_provider_key_may_be_left_out_only_when_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = MODEL + "      api_key: os.environ/UNSET_VAR\n"
    env = {"TOLLWAY_ALLOW_MISSING_PROVIDER_KEYS": "1"}
    with caplog.at_level(logging.WARNING, logger="tollway.config"):
        config = parse_config(text, "c", env)
    assert config.model_list[0].litellm_params.api_key is None
    assert any("UNSET_VAR" in r.getMessage() for r in caplog.records)


def test_the_allowance_covers_provider_keys_only_never_the_master_key() -> None:
    text = "general_settings:\n  master_key: os.environ/UNSET_VAR\n"
    with pytest.raises(ConfigError, match="UNSET_VAR"):
        parse_config(text, "c", {"TOLLWAY_ALLOW_MISSING_PROVIDER_KEYS": "1"})


def test_several_unset_variables_are_counted_in_the_one_line() -> None:
    text = MODEL + "      api_key: os.environ/A_VAR\ngeneral_settings:\n  master_key: ${B_VAR}\n"
    with pytest.raises(ConfigError, match=r"A_VAR.*\(and 1 more unset\)"):
        parse_config(text, "c", {})
