"""Session-scoped PostgreSQL for the store tests; each test gets its own fresh database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.store.postgres_server import PostgresServer

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.create_database(f"tollway_test_{next(_names)}")
