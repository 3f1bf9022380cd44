"""Choosing the store: DATABASE_URL / database_url, and replicas refused on SQLite."""

from __future__ import annotations

import pytest

from proxy.config import parse_config
from proxy.server.settings import SettingsError, resolve

PG = "postgresql://u:p@db:5432/tollway"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"DATABASE_URL": PG}, PG, id="litellm-variable"),
        pytest.param({"DATABASE_URL": "postgres://h/x"}, "postgres://h/x", id="short-scheme"),
        pytest.param(
            {"DATABASE_URL": PG, "TOLLWAY_DATABASE_URL": "postgresql://other/db"},
            "postgresql://other/db",
            id="tollway-variable-wins",
        ),
        pytest.param({}, None, id="default-sqlite"),
    ],
)
def test_database_url_from_the_environment(environ: dict[str, str], expected: str | None) -> None:
    assert resolve({}, environ, None).database_url == expected


def test_database_url_in_the_environment_beats_the_config_file() -> None:
    config = parse_config("general_settings:\n  database_url: postgresql://file/db\n", "c.yaml", {})
    assert resolve({}, {"DATABASE_URL": PG}, config).database_url == PG


def test_several_replicas_on_sqlite_are_refused_with_how_to_fix_it() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL=postgresql://"):
        resolve({}, {"TOLLWAY_REPLICAS": "3"}, None)
    settings = resolve({}, {"TOLLWAY_REPLICAS": "3", "DATABASE_URL": PG}, None)
    assert settings.replicas == 3


def test_the_pool_size_is_bounded_by_a_variable() -> None:
    assert resolve({}, {"TOLLWAY_DB_POOL_SIZE": "4"}, None).db_pool_size == 4
    assert resolve({}, {}, None).db_pool_size == 10
