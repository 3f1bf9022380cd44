"""How the Redis ledger is selected, and the ``--workers`` rule that depends on it."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config import parse_config
from proxy.server.settings import SettingsError, resolve

MASTER = {"master_key": "sk-master"}


def config(text: str) -> Any:
    return parse_config(text, "config.yaml", {"REDIS_PW": "p@ss word"})


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        pytest.param("", {"TOLLWAY_REDIS_URL": "redis://r:6379/2"}, "redis://r:6379/2", id="env"),
        pytest.param(
            "router_settings:\n  redis_host: cache.local\n  redis_port: 6380\n"
            "  redis_password: os.environ/REDIS_PW\n",
            {},
            "redis://:p%40ss%20word@cache.local:6380/0",
            id="router-settings",
        ),
        pytest.param(
            "litellm_settings:\n  cache: true\n  cache_params:\n    type: redis\n"
            "    host: only-cache\n",
            {},
            "redis://only-cache:6379/0",
            id="cache-params-only",
        ),
        pytest.param(
            "router_settings:\n  redis_url: redis://router:1/0\nlitellm_settings:\n"
            "  cache: true\n  cache_params:\n    type: redis\n    host: other\n",
            {},
            "redis://router:1/0",
            id="router-before-cache",
        ),
        pytest.param(
            "router_settings:\n  redis_host: file\n",
            {"TOLLWAY_REDIS_URL": "redis://env:6379/0"},
            "redis://env:6379/0",
            id="env-over-file",
        ),
        pytest.param("", {}, None, id="none"),
    ],
)
def test_the_redis_ledger_is_selected_from_env_router_or_cache_settings(
    text: str, env: dict[str, str], expected: str | None
) -> None:
    assert resolve({}, env, config(text or "model_list: []\n")).redis_url == expected


def test_several_workers_without_redis_are_refused_with_how_to_set_it_up() -> None:
    with pytest.raises(SettingsError) as caught:
        resolve({"workers": 2, **MASTER}, {}, None)
    message = str(caught.value)
    assert "TOLLWAY_REDIS_URL=redis://" in message and "router_settings.redis_host" in message


def test_several_workers_with_redis_are_allowed() -> None:
    settings = resolve({"workers": 2, **MASTER}, {"TOLLWAY_REDIS_URL": "redis://r:6379/0"}, None)
    assert settings.workers == 2


def test_the_failure_mode_is_closed_by_default_and_checked() -> None:
    assert resolve({}, {}, None).redis_failure == "closed"
    assert resolve({}, {"TOLLWAY_REDIS_FAILURE": "OPEN"}, None).redis_failure == "open"
    with pytest.raises(SettingsError, match="TOLLWAY_REDIS_FAILURE"):
        resolve({}, {"TOLLWAY_REDIS_FAILURE": "maybe"}, None)
