"""Helpers for the admin API tests: a sync client against the gateway, in process.

The gateway is the real app (``create_app``) with its lifespan run by Starlette's
``TestClient``; its upstream is the fake OpenAI server on a real port, reached by the real
HTTP client. Time is a ``FakeClock``: expiry is tested by moving it, not by sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, free_port, gateway_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import FakeClock, InProcessGateway


class AdminGateway:
    """A running in-process gateway: its client, its database file and its clock."""

    def __init__(self, gateway: InProcessGateway, client: httpx.Client) -> None:
        self.client = client
        self.db_path = gateway.db_path
        self.clock: FakeClock = gateway.clock


@contextmanager
def running_gateway(
    fake: FakeOpenAI, tmp: Path, *, master_key: bool = True
) -> Iterator[AdminGateway]:
    # Priced, so that requests show up as spend.
    config = gateway_config(fake, free_port()).replace(
        "      model: openai/fake-ok\n",
        "      model: openai/fake-ok\n"
        "      input_cost_per_token: 0.000001\n"
        "      output_cost_per_token: 0.000002\n",
    )
    if not master_key:
        config = config.split("general_settings:")[0]
    gateway = InProcessGateway(tmp, config)
    with gateway.sync_client() as client:
        yield AdminGateway(gateway, client)


class Admin:
    """Calls the gateway as one key (the master key unless told otherwise)."""

    def __init__(self, gateway: AdminGateway, key: str = MASTER_KEY) -> None:
        self.gateway = gateway
        self.http = gateway.client
        self.key = key

    def as_key(self, key: str) -> Admin:
        return Admin(self.gateway, key)

    def _headers(self, key: str | None) -> dict[str, str]:
        key = self.key if key is None else key
        return {"authorization": f"Bearer {key}"}

    def post(self, path: str, body: Any = None, *, auth_key: str | None = None) -> httpx.Response:
        return self.http.post(
            path, json=body if body is not None else {}, headers=self._headers(auth_key)
        )

    def get(self, path: str, *, auth_key: str | None = None, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self._headers(auth_key))

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.get(path, **params) if method == "GET" else self.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()

    def generate(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.ok("POST", "/key/generate", fields)
        return body

    def new_team(self, **fields: Any) -> str:
        """Create a team; its id."""
        team_id: str = self.ok("POST", "/team/new", fields)["team_id"]
        return team_id

    def chat(self, key: str, model: str = "gpt-test") -> httpx.Response:
        return self.http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Say hello"}]},
            headers={"authorization": f"Bearer {key}"},
        )

    def close(self) -> None:
        """The client belongs to the gateway fixture; nothing to close per test."""


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error
