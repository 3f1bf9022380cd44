"""Gateway processes sharing one Redis ledger and one SQLite file, for the multi-process tests.

Keys are created through the first process before the others start (each loads the store
at start; propagating keys created later is the store's job, not the ledger's).
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
PREFIX = "tollway:ledger:"


def config(upstream: FakeOpenAI) -> str:
    lines = ["model_list:"]
    for name, model in (("priced", "fake-ok"), ("slow", "fake-slow-stream")):
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
            "    model_info:",
            "      input_cost_per_token: 0.001",
            "      output_cost_per_token: 0.002",
            "      max_output_tokens: 100",
        ]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    return "\n".join(lines) + "\n"


def start(
    tmp: Path, name: str, upstream: FakeOpenAI, env: dict[str, str], args: list[str] | None = None
) -> GatewayProcess:
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    return start_gateway(
        folder, config(upstream), {"TOLLWAY_DB": str(tmp / "shared.db"), **env}, args
    )


def start_many(
    tmp: Path, names: list[str], upstream: FakeOpenAI, env: dict[str, str]
) -> list[GatewayProcess]:
    """Several processes started at once (each start waits for readiness)."""
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(start, tmp, name, upstream, env) for name in names]
        return [future.result() for future in futures]


def admin_post(gateway: GatewayProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{gateway.url}{path}", json=body, headers=MASTER, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def chat(model: str = "priced", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        **extra,
    }
