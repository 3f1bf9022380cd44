"""Fixtures for the admin API tests: one priced in-process gateway per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.admin import Admin, AdminGateway, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def gateway(
    request: pytest.FixtureRequest,
    fake_openai: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AdminGateway]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    with running_gateway(fake_openai, tmp_path_factory.mktemp(name)) as proc:
        yield proc


@pytest.fixture
def admin(gateway: AdminGateway) -> Iterator[Admin]:
    client = Admin(gateway)
    yield client
    client.close()
