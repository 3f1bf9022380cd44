"""Helpers for the admin API tests: a sync client against a real gateway process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, GatewayProcess, free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI


@contextmanager
def running_gateway(fake: FakeOpenAI, tmp: Path) -> Iterator[GatewayProcess]:
    # Priced, so that requests show up as spend.
    config = gateway_config(fake, free_port()).replace(
        "      model: openai/fake-ok\n",
        "      model: openai/fake-ok\n"
        "      input_cost_per_token: 0.000001\n"
        "      output_cost_per_token: 0.000002\n",
    )
    proc = start_gateway(tmp, config)
    try:
        yield proc
    finally:
        proc.stop()


class Admin:
    """Calls the gateway as one key (the master key unless told otherwise)."""

    def __init__(self, url: str, key: str = MASTER_KEY) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.key = key

    def as_key(self, key: str) -> Admin:
        return Admin(str(self.http.base_url), key)

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
        self.http.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error
