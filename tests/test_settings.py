"""Resolving runtime settings: CLI > environment > config file > defaults."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from proxy.config import parse_config
from proxy.server.settings import (
    OPTIONS,
    Settings,
    SettingsError,
    environ_for_workers,
    is_loopback,
    resolve,
)

CONFIG = parse_config(
    """\
general_settings:
  master_key: sk-from-config
  database_url: sqlite:///config.db
  max_request_size_mb: 1
""",
    "config.yaml",
    {},
)


def test_defaults_apply_when_nothing_is_given() -> None:
    settings = resolve({}, {}, None)
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 4000
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.master_key is None


def test_config_file_overrides_defaults() -> None:
    settings = resolve({}, {}, CONFIG)
    assert settings.master_key == "sk-from-config"
    assert settings.db == "config.db"
    assert settings.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("field", "env_name", "env_value", "cli_value", "from_config", "from_env"),
    [
        pytest.param(
            "master_key",
            "TOLLWAY_MASTER_KEY",
            "sk-env",
            "sk-cli",
            "sk-from-config",
            "sk-env",
            id="master-key",
        ),
        pytest.param("db", "TOLLWAY_DB", "env.db", "cli.db", "config.db", "env.db", id="db"),
        pytest.param(
            "max_body_bytes",
            "TOLLWAY_MAX_BODY_BYTES",
            "2048",
            4096,
            1024 * 1024,
            2048,
            id="max-body-bytes",
        ),
    ],
)
def test_precedence_is_cli_then_env_then_config(
    field: str, env_name: str, env_value: str, cli_value: Any, from_config: Any, from_env: Any
) -> None:
    env = {env_name: env_value}
    assert getattr(resolve({}, {}, CONFIG), field) == from_config
    assert getattr(resolve({}, env, CONFIG), field) == from_env
    assert getattr(resolve({field: cli_value}, env, CONFIG), field) == cli_value


@pytest.mark.parametrize(
    ("field", "env_name", "env_value", "cli_value", "default", "from_env"),
    [
        pytest.param("port", "TOLLWAY_PORT", "8080", 9090, 4000, 8080, id="port"),
        pytest.param("workers", "TOLLWAY_WORKERS", "4", 2, 1, 4, id="workers"),
        pytest.param(
            "log_level", "TOLLWAY_LOG_LEVEL", "DEBUG", "error", "info", "debug", id="log-level"
        ),
        pytest.param(
            "access_log", "TOLLWAY_ACCESS_LOG", "yes", False, False, True, id="access-log"
        ),
        pytest.param(
            "graceful_timeout_s",
            "TOLLWAY_GRACEFUL_TIMEOUT_S",
            "2.5",
            7.0,
            30.0,
            2.5,
            id="graceful-timeout",
        ),
        pytest.param(
            "flush_interval_ms", "TOLLWAY_FLUSH_INTERVAL_MS", "50", 75, 200, 50, id="flush-interval"
        ),
    ],
)
def test_precedence_is_cli_then_env_then_defaults(
    field: str, env_name: str, env_value: str, cli_value: Any, default: Any, from_env: Any
) -> None:
    env = {env_name: env_value}
    assert getattr(resolve({}, {}, None), field) == default
    assert getattr(resolve({}, env, None), field) == from_env
    assert getattr(resolve({field: cli_value}, env, None), field) == cli_value


def test_cli_options_left_unset_do_not_override() -> None:
    settings = resolve({"port": None, "master_key": None}, {"TOLLWAY_PORT": "5000"}, CONFIG)
    assert settings.port == 5000
    assert settings.master_key == "sk-from-config"


def test_empty_environment_variable_is_ignored() -> None:
    assert resolve({}, {"TOLLWAY_PORT": ""}, None).port == 4000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("TOLLWAY_PORT", "abc", id="port-text"),
        pytest.param("TOLLWAY_PORT", "-1", id="port-negative"),
        pytest.param("TOLLWAY_WORKERS", "1.5", id="workers-float"),
        pytest.param("TOLLWAY_MAX_BODY_BYTES", "1MB", id="body-unit"),
        pytest.param("TOLLWAY_ACCESS_LOG", "maybe", id="bool"),
        pytest.param("TOLLWAY_LOG_LEVEL", "verbose", id="log-level"),
        pytest.param("TOLLWAY_GRACEFUL_TIMEOUT_S", "0", id="timeout-zero"),
        pytest.param("TOLLWAY_CONNECT_TIMEOUT_S", "nan", id="timeout-nan"),
    ],
)
def test_bad_environment_value_raises_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        resolve({}, {name: value}, None)


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("0.0.0.0", id="ipv4-any"),
        pytest.param("::", id="ipv6-any"),
        pytest.param("10.1.2.3", id="private"),
        pytest.param("gateway.example.com", id="hostname"),
    ],
)
def test_binding_off_loopback_without_master_key_is_refused(host: str) -> None:
    with pytest.raises(SettingsError, match="master key"):
        resolve({"host": host}, {}, None)


@pytest.mark.parametrize(
    ("cli", "env", "config"),
    [
        pytest.param({"master_key": "sk-cli"}, {}, None, id="cli-key"),
        pytest.param({}, {"TOLLWAY_MASTER_KEY": "sk-env"}, None, id="env-key"),
        pytest.param({}, {}, CONFIG, id="config-key"),
    ],
)
def test_binding_off_loopback_with_master_key_is_allowed(
    cli: dict[str, Any], env: dict[str, str], config: Any
) -> None:
    assert resolve({**cli, "host": "0.0.0.0"}, env, config).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("127.0.0.1", True, id="v4"),
        pytest.param("127.8.9.10", True, id="v4-range"),
        pytest.param("::1", True, id="v6"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("0.0.0.0", False, id="any"),
        pytest.param("192.168.1.1", False, id="lan"),
        pytest.param("localhost.evil.com", False, id="lookalike"),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("url", "db"),
    [
        pytest.param("sqlite:///x.db", "x.db", id="relative"),
        pytest.param("sqlite:////var/lib/tollway/x.db", "/var/lib/tollway/x.db", id="absolute"),
        pytest.param("sqlite+aiosqlite:///y.db", "y.db", id="aiosqlite"),
        pytest.param("plain.db", "plain.db", id="bare-path"),
    ],
)
def test_sqlite_database_url_sets_the_db_file(url: str, db: str) -> None:
    config = parse_config(f"general_settings:\n  database_url: {url}\n", "c.yaml", {})
    assert resolve({}, {}, config).db == db


def test_postgres_database_url_selects_the_shared_store() -> None:
    config = parse_config(
        "general_settings:\n  database_url: postgresql://u:p@db:5432/litellm\n", "c.yaml", {}
    )
    settings = resolve({}, {}, config)
    assert settings.database_url == "postgresql://u:p@db:5432/litellm"
    assert settings.db == Settings().db


def test_an_unknown_database_url_scheme_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config("general_settings:\n  database_url: mysql://db/x\n", "c.yaml", {})
    with caplog.at_level(logging.WARNING, logger="tollway.settings"):
        settings = resolve({}, {}, config)
    assert settings.db == Settings().db and settings.database_url is None
    assert any("database_url" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(Settings(), id="defaults"),
        pytest.param(
            Settings(
                config="/etc/tollway/config.yaml",
                host="0.0.0.0",
                port=8123,
                workers=1,
                master_key="sk-master",
                db="/data/t.db",
                flush_interval_ms=50,
                max_body_bytes=1024,
                log_level="debug",
                graceful_timeout_s=2.5,
                connect_timeout_s=0.75,
                request_timeout_s=120.0,
                pool_size=64,
                access_log=True,
            ),
            id="every-option",
        ),
        pytest.param(Settings(workers=4, access_log=False), id="workers-without-master-key"),
    ],
)
def test_environ_for_workers_round_trips_through_resolve(settings: Settings) -> None:
    environ = environ_for_workers(settings)
    assert all(name.startswith("TOLLWAY_") for name in environ)
    assert resolve({}, environ, None) == settings


@pytest.mark.parametrize(
    ("cli", "env", "config"),
    [
        pytest.param({"workers": 2, "master_key": "sk-cli"}, {}, None, id="cli"),
        pytest.param({}, {"TOLLWAY_WORKERS": "4", "TOLLWAY_MASTER_KEY": "sk-env"}, None, id="env"),
        pytest.param({"workers": 3}, {}, CONFIG, id="config-key"),
    ],
)
def test_several_workers_with_a_master_key_are_refused(
    cli: dict[str, Any], env: dict[str, str], config: Any
) -> None:
    # Each worker would keep its own ledger, so budgets could be overspent.
    with pytest.raises(SettingsError, match="workers"):
        resolve(cli, env, config)


def test_several_workers_without_a_master_key_are_allowed() -> None:
    assert resolve({"workers": 4}, {}, None).workers == 4


def test_every_settings_field_has_exactly_one_option() -> None:
    fields = [option.field for option in OPTIONS]
    assert sorted(fields) == sorted(Settings.__struct_fields__)
    envs = [option.env for option in OPTIONS]
    assert len(set(envs)) == len(envs)
