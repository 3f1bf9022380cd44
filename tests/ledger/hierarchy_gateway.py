"""An in-process gateway on the built-in mock model, priced, for budget and hierarchy tests.

The mock model honours ``max_tokens``, so a call whose output a budget capped really costs
less, as it would upstream. Its reply to ``say(n)`` is about ``n + 7`` words (a token each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY
from tests.inprocess import InProcessGateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
INPUT_PRICE = 0.000001
OUTPUT_PRICE = 0.000002


def config(extra: str = "") -> str:
    return (
        "model_list:\n"
        "  - model_name: priced\n"
        "    litellm_params:\n"
        "      model: mock/priced\n"
        "    model_info:\n"
        f"      input_cost_per_token: {INPUT_PRICE}\n"
        f"      output_cost_per_token: {OUTPUT_PRICE}\n"
        "      max_output_tokens: 1000\n"
        "  - model_name: other\n"
        "    litellm_params:\n"
        "      model: mock/other\n"
        "    model_info:\n"
        f"      input_cost_per_token: {INPUT_PRICE}\n"
        f"      output_cost_per_token: {OUTPUT_PRICE}\n"
        "general_settings:\n"
        "  master_key: os.environ/TEST_MASTER_KEY\n" + extra
    )


@asynccontextmanager
async def gateway(tmp: Path, extra: str = "", **cli: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with started(tmp, extra, **cli) as (client, _):
        yield client


@asynccontextmanager
async def started(
    tmp: Path, extra: str = "", **cli: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, InProcessGateway]]:
    built = await InProcessGateway.build(tmp, config(extra), **cli)
    async with built.running() as client:
        yield client, built


def say(words: int) -> str:
    return " ".join(["w"] * words)


def chat(words: int = 100, model: str = "priced", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": say(words)}], **extra}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body, headers=MASTER)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert isinstance(data, dict)
    return data


async def new_key(client: httpx.AsyncClient, **fields: Any) -> str:
    key = (await post(client, "/key/generate", fields))["key"]
    assert isinstance(key, str)
    return key
