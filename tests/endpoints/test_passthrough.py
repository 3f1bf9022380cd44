"""Provider pass-through routes: ``/openai/*``, ``/anthropic/*``, ``/cohere/*`` forwarded as
they are with the gateway's credential (the caller's virtual key is never sent upstream),
the caller authenticated, and spend tracked when the reply carries usage."""

from __future__ import annotations

import httpx
import pytest

from proxy.endpoints.passthrough import UsageSniffer
from tests.conftest import UPSTREAM_KEY
from tests.endpoints.conftest import claude, new_key, sdk, spend
from tests.fakes.side_upstream import FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_openai_pass_through_uses_the_gateways_key_and_bills_the_usage(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    reply = await sdk(client, key, "/openai/v1").chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    assert reply.choices[0].message.content == "hi"
    sent = side.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert key not in str(sent["headers"])
    # 1000 prompt and 500 completion tokens at gpt-4o-mini's prices.
    assert spend(gw, key) == pytest.approx(1000 * 1.5e-7 + 500 * 6e-7)


async def test_anthropic_pass_through_stream_is_relayed_and_billed(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    async with claude(gw, key, "http://tollway.test/anthropic").messages.stream(
        model="claude-haiku-4-5-20251001",
        max_tokens=64,
        messages=MESSAGES,  # type: ignore[arg-type]
    ) as stream:
        text = await stream.get_final_text()
    assert text == "hi"
    assert side.requests[-1]["headers"]["x-api-key"] == UPSTREAM_KEY
    price = gw.state.accounting.prices.lookup("anthropic/claude-haiku-4-5-20251001")
    expected = 200 * price.input_cost_per_token + 30 * price.output_cost_per_token
    assert expected > 0
    assert spend(gw, key) == pytest.approx(expected)


async def test_pass_through_needs_a_virtual_key(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    before = len(side.requests)
    resp = await client.post(
        "/openai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers=bearer("sk-unknown"),
    )
    assert resp.status_code == 401
    missing = await client.post(
        "/cohere/v2/rerank", json={"model": "rerank-v3.5", "query": "q", "documents": ["a"]}
    )
    assert missing.status_code == 401
    assert len(side.requests) == before


async def test_cohere_pass_through_forwards_any_path(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/cohere/v2/rerank",
        json={"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"]},
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "rerank-cohere"
    assert side.requests[-1]["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_an_upstream_error_is_relayed_as_the_provider_sent_it(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    resp = await client.get("/openai/v1/no-such-thing", headers=bearer(key))
    assert resp.status_code == 404


async def test_gemini_pass_through_takes_the_virtual_key_in_x_goog_api_key(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/gemini/v1beta/models/gemini-2.0-flash:countTokens?key=ignored",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": key},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["totalTokens"] == 5
    sent = side.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.0-flash:countTokens"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert "key" not in sent["query"]


def test_a_long_streams_usage_is_found_at_its_end() -> None:
    sniffer = UsageSniffer()
    sniffer.observe(b'data: {"choices": []}\n\n' * 10_000)
    for _ in range(100):
        sniffer.observe(b'data: {"choices": [{"delta": {"content": "word"}}]}\n\n')
    sniffer.observe(
        b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 700}}\n\n'
    )
    sniffer.observe(b"data: [DONE]\n\n")
    usage = sniffer.usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 700)


async def test_gemini_generate_content_for_a_model_outside_the_config_is_passed_through(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    # Google's REST clients put the key in ``?key=``: here, the caller's virtual key.
    resp = await client.post(
        f"/gemini/v1beta/models/gemini-2.5-pro:generateContent?key={key}", json=body
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["candidates"][0]["content"]["parts"][0]["text"] == "hello"
    sent = side.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert "key" not in sent["query"]
    price = gw.state.accounting.prices.lookup("gemini/gemini-2.5-pro")
    assert price.priced
    expected = 400 * price.input_cost_per_token + 100 * price.output_cost_per_token
    assert spend(gw, key) == pytest.approx(expected)


async def test_gemini_stream_generate_content_is_passed_through_and_billed(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": key},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.text.count("data: ") == 2
    assert side.requests[-1]["query"] == {"alt": "sse"}
    price = gw.state.accounting.prices.lookup("gemini/gemini-2.5-pro")
    expected = 400 * price.input_cost_per_token + 100 * price.output_cost_per_token
    assert spend(gw, key) == pytest.approx(expected)


async def test_gemini_generate_content_for_a_model_group_stays_the_gateways_route(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/gemini/v1beta/models/gemini-flash:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": key},
    )
    assert resp.status_code == 200, resp.text
    # Routed through the model group: the deployment's own model name went upstream, and the
    # gateway's headers are on the reply.
    assert side.requests[-1]["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert resp.headers["x-tollway-model"] == "gemini/gemini-2.0-flash"
