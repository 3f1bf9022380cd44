"""Loading LiteLLM-format config files into frozen structs, with errors that name the line."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from proxy.config import (
    NOT_SUPPORTED,
    PARTLY_READ,
    Config,
    ConfigError,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ModelInfo,
    RouterSettings,
    load_config,
    parse_config,
)
from proxy.server.settings import OPTIONS, resolve

LITELLM_CONFIG = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: https://api.openai.com/v1
      api_key: os.environ/OPENAI_KEY_FOR_TEST
      rpm: 500
      tpm: 90000
      timeout: 30
      max_retries: 2
    model_info:
      id: gpt-4o-primary
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
      max_input_tokens: 128000
      max_output_tokens: 16384
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: https://backup.example.com/v1
      api_key: os.environ/BACKUP_KEY_FOR_TEST
      rpm: 100
  - model_name: local-llama
    litellm_params:
      model: openai/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://127.0.0.1:8000/v1
router_settings:
  routing_strategy: usage-based-routing-v2
  num_retries: 3
  timeout: 60
  fallbacks: [{"gpt-4o": ["local-llama"]}]
  allowed_fails: 2
  cooldown_time: 30
  redis_host: redis.internal
  redis_port: os.environ/REDIS_PORT_FOR_TEST
  redis_password: os.environ/REDIS_PASSWORD_FOR_TEST
litellm_settings:
  drop_params: True
  success_callback: ["langfuse"]
  cache: true
  cache_params:
    type: redis
    ttl: 600
general_settings:
  master_key: os.environ/MASTER_KEY_FOR_TEST
  database_url: os.environ/DATABASE_URL_FOR_TEST
"""

LITELLM_ENV = {
    "OPENAI_KEY_FOR_TEST": "sk-openai-123",
    "BACKUP_KEY_FOR_TEST": "sk-backup-456",
    "REDIS_PORT_FOR_TEST": "6380",
    "REDIS_PASSWORD_FOR_TEST": "hunter2",
    "MASTER_KEY_FOR_TEST": "sk-master-789",
    "DATABASE_URL_FOR_TEST": "sqlite:///spend.db",
}


def test_litellm_proxy_config_loads_unchanged() -> None:
    config = parse_config(LITELLM_CONFIG, "config.yaml", LITELLM_ENV)
    first, second, local = config.model_list
    assert first.model_name == second.model_name == "gpt-4o"
    assert first.litellm_params.model == "openai/gpt-4o"
    assert first.litellm_params.api_base == "https://api.openai.com/v1"
    assert (first.litellm_params.rpm, first.litellm_params.tpm) == (500, 90000)
    assert first.litellm_params.timeout == 30.0
    assert first.litellm_params.max_retries == 2
    assert first.model_info.id == "gpt-4o-primary"
    assert first.model_info.input_cost_per_token == pytest.approx(2.5e-6)
    assert first.model_info.max_output_tokens == 16384
    assert second.litellm_params.api_base == "https://backup.example.com/v1"
    assert local.litellm_params.model == "openai/meta-llama/Llama-3.1-8B-Instruct"
    assert local.litellm_params.api_key is None
    router = config.router_settings
    assert router.routing_strategy == "usage-based-routing-v2"
    assert router.num_retries == 3
    assert router.fallbacks == ({"gpt-4o": ("local-llama",)},)
    assert router.cooldown_time == 30.0
    assert config.litellm_settings.drop_params is True
    assert config.litellm_settings.success_callback == ("langfuse",)
    assert config.litellm_settings.cache_params == {"type": "redis", "ttl": 600}
    assert config.general_settings.database_url == "sqlite:///spend.db"


def test_config_structs_are_frozen() -> None:
    config = parse_config(LITELLM_CONFIG, "config.yaml", LITELLM_ENV)
    with pytest.raises(AttributeError):
        config.general_settings.master_key = "changed"  # type: ignore[misc]


def test_os_environ_references_are_resolved_from_the_given_environment() -> None:
    config = parse_config(LITELLM_CONFIG, "config.yaml", LITELLM_ENV)
    assert config.model_list[0].litellm_params.api_key == "sk-openai-123"
    assert config.model_list[1].litellm_params.api_key == "sk-backup-456"
    assert config.general_settings.master_key == "sk-master-789"
    assert config.router_settings.redis_password == "hunter2"
    # A string from the environment is converted to the field's type.
    assert config.router_settings.redis_port == 6380


def test_missing_environment_variable_stops_loading_naming_it() -> None:
    env = {k: v for k, v in LITELLM_ENV.items() if k != "BACKUP_KEY_FOR_TEST"}
    with pytest.raises(ConfigError) as info:
        parse_config(LITELLM_CONFIG, "config.yaml", env)
    assert "BACKUP_KEY_FOR_TEST" in str(info.value)
    assert "model_list[1].litellm_params.api_key" in str(info.value)


def test_unknown_keys_warn_with_key_and_line_but_load(caplog: pytest.LogCaptureFixture) -> None:
    text = """\
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      frobnicate: 3
general_settings:
  master_key: sk-x
  not_a_setting: true
top_level_extra: 1
"""
    with caplog.at_level(logging.WARNING, logger="tollway.config"):
        config = parse_config(text, "cfg.yaml", {})
    assert config.model_list[0].litellm_params.model == "openai/m"
    assert config.general_settings.master_key == "sk-x"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = {
        "model_list[0].litellm_params.frobnicate": "line 5",
        "general_settings.not_a_setting": "line 8",
        "top_level_extra": "line 9",
    }
    for key, line in expected.items():
        assert any(key in m and line in m and "cfg.yaml" in m for m in warnings), (key, warnings)


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
            "      rpm: many\n",
            "model_list[0].litellm_params.rpm",
            "line 5",
            id="rpm-not-int",
        ),
        pytest.param(
            "router_settings:\n  num_retries: [1, 2]\n",
            "router_settings.num_retries",
            "line 2",
            id="num-retries-list",
        ),
        pytest.param(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n"
            "  - model_name: b\n    litellm_params:\n      model: openai/b\n"
            "      timeout: soon\n",
            "model_list[1].litellm_params.timeout",
            "line 8",
            id="second-entry-timeout",
        ),
        pytest.param(
            "model_list:\n  - model_name: m\n    litellm_params:\n      api_base: http://x\n",
            "model_list[0].litellm_params",
            "line 3",  # the line of the `litellm_params:` key, not of its first entry
            id="model-missing",
        ),
        pytest.param("model_list: {a: 1}\n", "model_list", "line 1", id="model-list-mapping"),
    ],
)
def test_bad_type_raises_config_error_naming_field_and_line(
    text: str, field: str, line: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml", {})
    message = str(info.value)
    assert "bad.yaml" in message
    assert field in message
    assert line in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- one\n- two\n", id="list"),
        pytest.param("just a string\n", id="scalar"),
        pytest.param("42\n", id="number"),
    ],
)
def test_top_level_that_is_not_a_mapping_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(text, "cfg.yaml", {})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("model_list: [\n", id="unclosed-flow"),
        pytest.param("a: b: c\n", id="nested-colon"),
        pytest.param("model_list:\n\t- x\n", id="tab-indent"),
    ],
)
def test_invalid_yaml_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config(text, "cfg.yaml", {})


def test_empty_file_is_an_empty_config() -> None:
    assert parse_config("", "empty.yaml", {}) == Config()


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(LITELLM_CONFIG)
    config = load_config(str(path), LITELLM_ENV)
    assert len(config.model_list) == 3
    # A file given explicitly is not extended with providers from the environment.
    config = load_config(str(path), {**LITELLM_ENV, "OPENAI_API_KEY": "sk-env"})
    assert [e.model_name for e in config.model_list] == ["gpt-4o", "gpt-4o", "local-llama"]


def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(str(missing), {})


def test_default_config_serves_mock_models_without_any_key() -> None:
    config = load_config(None, {})
    names = [entry.model_name for entry in config.model_list]
    assert names == ["mock-gpt", "mock-embedding"]
    assert config.model_list[0].litellm_params.model == "mock/mock-gpt"
    assert config.general_settings.master_key is None


def test_default_config_gains_openai_wildcards_when_openai_key_is_set() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "sk-from-env"})
    added = {
        e.model_name: e for e in config.model_list if e.model_name.startswith(("openai", "gpt"))
    }
    assert set(added) >= {"openai/*", "gpt-*"}
    assert added["openai/*"].litellm_params.model == "openai/*"
    assert added["openai/*"].litellm_params.api_key == "sk-from-env"
    assert added["gpt-*"].litellm_params.api_key == "sk-from-env"
    assert config.model_list[0].model_name == "mock-gpt"


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="unset"),
        pytest.param({"OPENAI_API_KEY": ""}, id="empty"),
        pytest.param({"SOME_OTHER_KEY": "x"}, id="unrelated"),
    ],
)
def test_default_config_has_no_openai_groups_without_openai_key(environ: dict[str, str]) -> None:
    config = load_config(None, environ)
    assert not any("*" in e.model_name for e in config.model_list)


def test_default_config_adds_other_compatible_providers_from_their_keys() -> None:
    config = load_config(None, {"GROQ_API_KEY": "gsk-1"})
    groq = [e for e in config.model_list if e.model_name == "groq/*"]
    assert len(groq) == 1
    assert groq[0].litellm_params.api_key == "gsk-1"
    # Bare OpenAI names stay unrouted without an OpenAI key.
    assert not any(e.model_name == "gpt-*" for e in config.model_list)


def test_config_round_trips_through_msgspec() -> None:
    config = parse_config(LITELLM_CONFIG, "config.yaml", LITELLM_ENV)
    assert msgspec.convert(msgspec.to_builtins(config), Config) == config


@pytest.mark.parametrize(
    ("environ", "groups"),
    [
        pytest.param({"ANTHROPIC_API_KEY": "k"}, {"anthropic/*", "claude-*"}, id="anthropic"),
        pytest.param({"GOOGLE_API_KEY": "k"}, {"gemini/*", "gemini-*"}, id="gemini-google-key"),
        pytest.param({"CO_API_KEY": "k"}, {"cohere/*", "command-*"}, id="cohere"),
        pytest.param(
            {"AZURE_API_KEY": "k", "AZURE_API_BASE": "https://x.openai.azure.com"},
            {"azure/*"},
            id="azure",
        ),
        pytest.param({"AZURE_API_KEY": "k"}, set(), id="azure-needs-a-base"),
        pytest.param(
            {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, {"bedrock/*"}, id="bedrock"
        ),
    ],
)
def test_default_config_adds_translating_providers_from_the_environment(
    environ: dict[str, str], groups: set[str]
) -> None:
    config = load_config(None, environ)
    added = {e.model_name for e in config.model_list} - {"mock-gpt", "mock-embedding"}
    assert added == groups


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tollway.config"):
        parse_config(text, "cfg.yaml", {})
    return [r.getMessage() for r in caplog.records if r.name == "tollway.config"]


def test_unknown_key_with_nothing_close_warns_with_its_own_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Typos of declared keys are errors (tests/config/test_typos.py); a key close to nothing
    # may be LiteLLM's, so it only warns.
    assert _warnings(caplog, "litellm_settings:\n  frobnicate: 1\n") == [
        "cfg.yaml: unknown config key litellm_settings.frobnicate (line 2) is not supported "
        "and is ignored"
    ]


def test_unknown_key_with_a_block_value_names_the_key_line_not_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = (
        "general_settings:\n  master_key: sk-x\n  extra_block:\n    a: 1\n    b: 2\nfoo:\n  - 1\n"
    )
    warnings = _warnings(caplog, text)
    assert any("general_settings.extra_block (line 3)" in m for m in warnings), warnings
    assert any("unknown config key foo (line 6)" in m for m in warnings), warnings


def test_declared_but_unread_key_is_warned_as_not_supported_with_its_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "model_list: []\nlitellm_settings:\n  num_retries: 2\n  drop_params: true\n"
    assert _warnings(caplog, text) == [
        "cfg.yaml: litellm_settings.drop_params (line 4) is not supported and is ignored: "
        "a parameter a provider cannot take is rejected with a 400, not dropped"
    ]


def _unsupported_cases() -> list[Any]:
    cases = []
    for struct, fields in NOT_SUPPORTED.items():
        for field in fields:
            if struct is Config:
                text, path = f"{field}:\n  A: b\n", field
            elif struct in (LiteLLMParams, ModelInfo):
                section = "litellm_params" if struct is LiteLLMParams else "model_info"
                text = (
                    "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
                    f"      {field}: x\n"
                )
                if section == "model_info":
                    text = text.replace(f"      {field}", f"    model_info:\n      {field}")
                path = f"model_list[0].{section}.{field}"
            else:
                section = {
                    RouterSettings: "router_settings",
                    GeneralSettings: "general_settings",
                    LiteLLMSettings: "litellm_settings",
                }[struct]
                text, path = f"{section}:\n  {field}: x\n", f"{section}.{field}"
            cases.append(pytest.param(text, path, id=path))
    return cases


@pytest.mark.parametrize(("text", "path"), _unsupported_cases())
def test_every_declared_but_unread_key_is_warned_about_when_present(
    caplog: pytest.LogCaptureFixture, text: str, path: str
) -> None:
    caplog.clear()
    # The values are not of the fields' types: only the warning is under test.
    with (
        caplog.at_level(logging.WARNING, logger="tollway.config"),
        contextlib.suppress(ConfigError),
    ):
        parse_config(text, "cfg.yaml", {})
    warnings = [r.getMessage() for r in caplog.records if r.name == "tollway.config"]
    line = text[: text.index(path.rsplit(".", 1)[-1] + ":")].count("\n") + 1
    assert any(f"{path} (line {line}) is not supported and is ignored: " in m for m in warnings), (
        warnings
    )


def test_not_supported_table_names_only_declared_fields() -> None:
    for struct, fields in NOT_SUPPORTED.items():
        assert set(fields) <= set(struct.__struct_fields__), struct.__name__
    for (struct, field), _keys in PARTLY_READ.items():
        assert field in struct.__struct_fields__


def test_unread_keys_absent_or_null_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        "      timeout: 5\n      drop_params:\n"
        "router_settings:\n  num_retries: 1\n  enable_tag_filtering: true\n"
        "litellm_settings:\n  turn_off_message_logging: true\n  set_verbose: false\n"
    )
    assert _warnings(caplog, text) == []


def test_routing_strategy_args_keys_other_than_the_latency_buffer_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = (
        "router_settings:\n  routing_strategy_args:\n    lowest_latency_buffer: 0.2\n    ttl: 60\n"
    )
    assert _warnings(caplog, text) == [
        "cfg.yaml: router_settings.routing_strategy_args.ttl (line 4) is not supported and is "
        "ignored: only lowest_latency_buffer is read"
    ]


def test_turn_off_message_logging_is_a_litellm_setting() -> None:
    config = parse_config("litellm_settings:\n  turn_off_message_logging: true\n", "c.yaml", {})
    assert config.litellm_settings.turn_off_message_logging is True
    assert parse_config("", "c.yaml", {}).litellm_settings.turn_off_message_logging is None


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        pytest.param(
            "general_settings:\n  proxy_batch_write_at: 2.5\n",
            "flush_interval_ms",
            2500,
            id="proxy-batch-write-at",
        ),
        pytest.param(
            "litellm_settings:\n  request_timeout: 42\n", "request_timeout_s", 42.0, id="timeout"
        ),
        pytest.param(
            "litellm_settings:\n  set_verbose: true\n", "log_level", "debug", id="verbose"
        ),
        pytest.param(
            "litellm_settings:\n  json_logs: true\n", "log_format", "json", id="json-logs"
        ),
    ],
)
def test_litellm_runtime_keys_set_the_matching_option(text: str, field: str, value: object) -> None:
    config = parse_config(text, "c.yaml", {})
    assert getattr(resolve({}, {}, config), field) == value
    # The environment still wins over the config file.
    option = next(o for o in OPTIONS if o.field == field)
    override = {"log_level": "error", "log_format": "text"}.get(field, "7")
    assert getattr(resolve({}, {option.env: override}, config), field) == option.parse(override)
