"""The endpoints' fixtures: one fake side upstream per module, a gateway config over it, the
in-process gateway on that config (a module overrides ``config_text`` to serve another), and
the helpers the tests share: a virtual key, the SDK clients over the app, a key's spend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from proxy.auth import hash_key
from proxy.directory import key_account
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.side_upstream import FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer


@pytest.fixture(scope="module")
def side() -> Iterator[FakeSideUpstream]:
    server = FakeSideUpstream(api_key=UPSTREAM_KEY)
    server.start()
    yield server
    server.stop()


def model_entry(
    name: str,
    model: str,
    api_base: str,
    params: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
) -> str:
    """One ``model_list`` entry on the upstream's key: ``params`` added to its
    ``litellm_params``, ``info`` as its ``model_info``."""
    lines = [
        f"  - model_name: {name}",
        "    litellm_params:",
        f"      model: {model}",
        f"      api_base: {api_base}",
        "      api_key: os.environ/TEST_UPSTREAM_KEY",
    ]
    lines += [f"      {k}: {v}" for k, v in (params or {}).items()]
    if info:
        lines.append("    model_info:")
        lines += [f"      {k}: {v}" for k, v in info.items()]
    return "\n".join(lines) + "\n"


def side_config(side: FakeSideUpstream, extra: str = "") -> str:
    """The side upstream's models, then ``extra`` (more ``model_entry``s), on the master key."""
    v1 = f"{side.origin}/v1"
    entries = [
        model_entry("dall-e-3", "openai/dall-e-3", v1),
        model_entry("whisper", "openai/whisper-1", v1),
        model_entry("tts", "openai/tts-1", v1),
        model_entry("moderation", "openai/omni-moderation-latest", v1),
        model_entry("rerank", "cohere/rerank-v3.5", side.origin),
        model_entry(
            "bge-rerank", "openai/bge-reranker-v2-m3", v1, info={"input_cost_per_query": 0.001}
        ),
        model_entry("claude", "anthropic/claude-upstream", side.origin),
        model_entry("gpt-test", "openai/gpt-4o-mini", v1),
        model_entry("gemini-flash", "gemini/gemini-2.0-flash", f"{side.origin}/v1beta"),
    ]
    return (
        "model_list:\n"
        + "".join(entries)
        + extra
        + "general_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
    )


@pytest.fixture
def config_text(side: FakeSideUpstream) -> str:
    """The config ``gateway`` serves; a module overrides this fixture to serve another."""
    return side_config(side)


@pytest.fixture
async def gateway(
    tmp_path: Path, config_text: str
) -> AsyncIterator[tuple[InProcessGateway, httpx.AsyncClient]]:
    """The gateway on ``config_text``, started, and a client over it."""
    gw = await InProcessGateway.build(tmp_path, config_text)
    async with gw.running() as client:
        yield gw, client


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


def sdk(client: httpx.AsyncClient, key: str, path: str = "/v1") -> openai.AsyncOpenAI:
    """The OpenAI SDK over the in-process app's client, at ``path`` on it."""
    return openai.AsyncOpenAI(
        base_url=f"http://tollway.test{path}", api_key=key, http_client=client, max_retries=0
    )


def spend(gw: InProcessGateway, key: str) -> float:
    """What the ledger holds as the key's spend (the key's account must exist)."""
    value = gw.state.ledger.spend(key_account(hash_key(key)))
    assert value is not None
    return value
