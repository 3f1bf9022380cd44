"""Token counting and model lookup: Anthropic's ``messages.count_tokens`` (passed through to
an ``anthropic/`` deployment, estimated by the gateway for others, never billed), LiteLLM's
``/utils/token_counter``, and ``client.models.retrieve``."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.endpoints.conftest import claude, new_key, sdk, spend
from tests.fakes.side_upstream import FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer


async def test_count_tokens_passes_through_to_an_anthropic_deployment(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    count = await claude(gw, key).messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "Hello"}]
    )
    assert count.input_tokens == 7
    sent = side.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["headers"]["x-api-key"] == UPSTREAM_KEY
    assert b'"model":"claude-upstream"' in sent["raw"]
    assert spend(gw, key) == 0.0


async def test_count_tokens_is_estimated_for_other_deployments_and_not_billed(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    before = len(side.requests)
    text = "word " * 400
    count = await claude(gw, key).messages.count_tokens(
        model="gpt-test", messages=[{"role": "user", "content": text}], system="Be brief."
    )
    assert len(side.requests) == before
    # About four bytes a token, plus a few per message.
    assert 500 <= count.input_tokens <= 520
    assert spend(gw, key) == 0.0
    resp = await client.post(
        "/messages/count_tokens",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(key),
    )
    assert resp.status_code == 200
    assert resp.json()["input_tokens"] >= 1


async def test_count_tokens_needs_a_key(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    resp = await client.post("/v1/messages/count_tokens", json={"model": "claude", "messages": []})
    assert resp.status_code == 401


async def test_token_counter_answers_in_litellms_shape(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/utils/token_counter",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]},
        headers=bearer(key),
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["request_model"] == "gpt-test"
    assert body["model_used"] == "openai/gpt-4o-mini"
    assert body["tokenizer_type"] == "openai_tokenizer"
    assert body["total_tokens"] >= 3


async def test_models_retrieve_finds_a_served_model_and_404s_others(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    key = await new_key(client, models=["gpt-test"])
    models = sdk(client, key).models
    model = await models.retrieve("gpt-test")
    assert model.id == "gpt-test" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        await models.retrieve("dall-e-3")  # served, but not to this key
    with pytest.raises(openai.NotFoundError):
        await models.retrieve("no-such-model")
    plain = await client.get("/models/gpt-test", headers=bearer(key))
    assert plain.status_code == 200
