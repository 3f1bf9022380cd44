"""A near miss of a config key is an error naming the key meant; LiteLLM's own keys that
Tollway does not read stay warnings (an existing LiteLLM file still loads)."""

from __future__ import annotations

import logging

import pytest

from proxy.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "model_lst:\n  - model_name: m\n",
            "cfg.yaml: `model_lst` (line 1) is not a config key; did you mean `model_list`?",
            id="top-level",
        ),
        pytest.param(
            "general_settings:\n  master_kye: sk-x\n",
            "cfg.yaml: `general_settings.master_kye` (line 2) is not a config key; "
            "did you mean `master_key`?",
            id="master-key-typo-would-turn-auth-off",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
            "      tmeout: 3\n",
            "cfg.yaml: `model_list[0].litellm_params.tmeout` (line 5) is not a config key; "
            "did you mean `timeout`?",
            id="nested-own-line",
        ),
    ],
)
def test_a_typo_is_an_error_with_its_own_line_and_the_key_meant(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", {})
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
            "      input_cost_per_second: 0.1\n",
            id="litellm-param-close-to-input_cost_per_token",
        ),
        pytest.param("litellm_settings:\n  modify_params: true\n", id="litellm-modify-params"),
        pytest.param("litellm_settings:\n  frobnicate: 1\n", id="nothing-close"),
    ],
)
def test_litellm_keys_and_far_unknown_keys_only_warn(
    caplog: pytest.LogCaptureFixture, text: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="tollway.config"):
        parse_config(text, "cfg.yaml", {})
    assert any("unknown config key" in r.getMessage() for r in caplog.records)
