"""The endpoints' fixtures: one fake side upstream per module, a gateway config over it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.side_upstream import FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer


@pytest.fixture(scope="module")
def side() -> Iterator[FakeSideUpstream]:
    server = FakeSideUpstream(api_key=UPSTREAM_KEY)
    server.start()
    yield server
    server.stop()


def side_config(side: FakeSideUpstream) -> str:
    v1 = f"{side.origin}/v1"
    entries: list[tuple[str, str, str, dict[str, Any]]] = [
        ("dall-e-3", "openai/dall-e-3", v1, {}),
        ("whisper", "openai/whisper-1", v1, {}),
        ("tts", "openai/tts-1", v1, {}),
        ("moderation", "openai/omni-moderation-latest", v1, {}),
        ("rerank", "cohere/rerank-v3.5", side.origin, {}),
        ("bge-rerank", "openai/bge-reranker-v2-m3", v1, {"input_cost_per_query": 0.001}),
        ("claude", "anthropic/claude-upstream", side.origin, {}),
        ("gpt-test", "openai/gpt-4o-mini", v1, {}),
        ("gemini-flash", "gemini/gemini-2.0-flash", f"{side.origin}/v1beta", {}),
    ]
    lines = ["model_list:"]
    for name, model, base, info in entries:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: {model}",
            f"      api_base: {base}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
        ]
        if info:
            lines.append("    model_info:")
            lines += [f"      {k}: {v}" for k, v in info.items()]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    return "\n".join(lines) + "\n"


async def new_key(client: httpx.AsyncClient, **fields: Any) -> str:
    resp = await client.post("/key/generate", json=fields, headers=bearer(MASTER_KEY))
    assert resp.status_code == 200, resp.text
    key: str = resp.json()["key"]
    return key


def claude(
    gw: InProcessGateway, key: str, base: str = "http://tollway.test"
) -> anthropic.AsyncAnthropic:
    """The Anthropic SDK over the in-process app (it speaks ``httpx2``, not ``httpx``)."""
    transport = httpx2.ASGITransport(app=gw.app)
    return anthropic.AsyncAnthropic(
        base_url=base,
        api_key=key,
        http_client=httpx2.AsyncClient(transport=transport, timeout=10),
        max_retries=0,
    )
