"""The side endpoints route, price and admit like chat: retries in the group (multipart
uploads resent), the router's fallback groups, TEI rerank in Cohere's shapes, end-user
budgets, unit prices from the price table (shown by /model/info), and the unpriced-model
refusal."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY
from tests.endpoints.conftest import model_entry, new_key, side_config, spend
from tests.fakes.side_upstream import AUDIO_SECONDS, FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer

AUDIO = b"RIFF" + bytes(40_000)


def extra_models(side: FakeSideUpstream, fallbacks_in: str = "router_settings") -> str:
    """``side_config`` plus broken deployments, a TEI reranker, an unpriced image model and
    the fallbacks between them."""
    broken = f"{side.origin}/broken/v1"
    v1 = f"{side.origin}/v1"
    tei = f"{side.origin}/tei"
    block = "".join(
        [
            model_entry("img-broken", "openai/dall-e-3", broken),
            model_entry("whisper-pair", "openai/whisper-1", broken),
            model_entry("whisper-pair", "openai/whisper-1", v1),
            model_entry("whisper-broken", "openai/whisper-1", broken),
            model_entry(
                "tei-rerank",
                "huggingface/BAAI/bge-reranker-base",
                tei,
                info={"input_cost_per_query": "0.001"},
            ),
            model_entry("img-unpriced", "openai/my-image-model", v1),
            model_entry("mod-broken", "openai/omni-moderation-latest", broken),
        ]
    )
    fallbacks = (
        f"{fallbacks_in}:\n"
        "  num_retries: 1\n"
        "  fallbacks: [{img-broken: [dall-e-3]}, {whisper-broken: [whisper]}]\n"
    )
    if fallbacks_in == "litellm_settings":
        fallbacks = (
            "router_settings:\n  num_retries: 1\n"
            "litellm_settings:\n"
            "  fallbacks: [{img-broken: [dall-e-3]}, {whisper-broken: [whisper]}]\n"
        )
    return side_config(side, block) + fallbacks


@pytest.fixture
def config_text(side: FakeSideUpstream) -> str:
    """The shared ``gateway`` fixture serves ``extra_models`` here."""
    return extra_models(side)


@pytest.mark.parametrize("where", ["router_settings", "litellm_settings"])
async def test_images_fall_back_to_the_routers_fallback_group(
    tmp_path: Path, side: FakeSideUpstream, where: str
) -> None:
    gw = await InProcessGateway.build(tmp_path, extra_models(side, where))
    async with gw.running() as client:
        key = await new_key(client)
        resp = await client.post(
            "/v1/images/generations",
            json={"model": "img-broken", "prompt": "a fox", "size": "1024x1792", "quality": "hd"},
            headers=bearer(key),
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-tollway-attempted-fallbacks"] == "1"
        assert resp.headers["x-tollway-model"] == "openai/dall-e-3"
        # Billed at the price of the deployment that served: one hd 1024x1792 dall-e-3 image.
        assert float(resp.headers["x-tollway-response-cost"]) == pytest.approx(0.12)
        assert spend(gw, key) == pytest.approx(0.12)
        assert side.paths()[-2:] == ["/broken/v1/images/generations", "/v1/images/generations"]


async def test_a_multipart_upload_is_resent_on_a_retry_in_the_group(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    # The router picks at random: call until a call picked the broken deployment first
    # (1 in 2 do; 30 misses in a row would take odds of one in a billion).
    retried = False
    for _ in range(30):
        before = len(side.requests)
        resp = await client.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-pair"},
            files={"file": ("a.wav", AUDIO, "audio/wav")},
            headers=bearer(key),
        )
        assert resp.status_code == 200, resp.text
        sent = side.requests[before:]
        assert sent[-1]["path"] == "/v1/audio/transcriptions"
        # The whole upload reached every deployment it was sent to, the retry included.
        assert all(AUDIO in r["raw"] for r in sent)
        assert resp.headers["x-tollway-attempted-retries"] == str(len(sent) - 1)
        if len(sent) == 2:
            assert sent[0]["path"] == "/broken/v1/audio/transcriptions"
            retried = True
            break
    assert retried


async def test_a_multipart_upload_falls_back_to_another_group(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/audio/transcriptions",
        data={"model": "whisper-broken"},
        files={"file": ("a.wav", AUDIO, "audio/wav")},
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-tollway-attempted-fallbacks"] == "1"
    assert side.requests[-1]["path"] == "/v1/audio/transcriptions"
    assert AUDIO in side.requests[-1]["raw"]
    # whisper-1's price from the table: $0.0001 per (started) second.
    assert spend(gw, key) == pytest.approx(math.ceil(AUDIO_SECONDS) * 0.0001)


async def test_a_failure_without_fallback_is_the_upstreams_error_and_not_billed(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/v1/moderations", json={"model": "mod-broken", "input": "x"}, headers=bearer(key)
    )
    assert resp.status_code == 502
    assert resp.json()["error"]["type"] == "upstream_error"
    assert spend(gw, key) == 0.0


@pytest.mark.parametrize(
    ("path", "version"), [("/v1/rerank", "1"), ("/rerank", "1"), ("/v2/rerank", "2")]
)
async def test_tei_rerank_answers_in_cohere_shape(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
    side: FakeSideUpstream,
    path: str,
    version: str,
) -> None:
    gw, client = gateway
    key = await new_key(client)
    documents = ["short", {"text": "the longest document of all"}, "medium text"]
    resp = await client.post(
        path,
        json={
            "model": "tei-rerank",
            "query": "which is longest?",
            "documents": documents,
            "top_n": 2,
            "return_documents": True,
        },
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["index"] for r in out["results"]] == [1, 2]
    assert out["results"][0]["relevance_score"] == pytest.approx(0.27)
    assert out["results"][0]["document"] == {"text": "the longest document of all"}
    assert out["results"][1]["document"] == {"text": "medium text"}
    assert out["meta"] == {"api_version": {"version": version}, "billed_units": {"search_units": 1}}
    sent = side.requests[-1]
    assert sent["path"] == "/tei/rerank"
    assert b'"texts":["short","the longest document of all","medium text"]' in sent["raw"]
    assert spend(gw, key) == pytest.approx(0.001)


@pytest.mark.parametrize("via", ["user-field", "header"])
async def test_an_end_users_budget_applies_to_the_side_endpoints(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream, via: str
) -> None:
    _gw, client = gateway
    made = await client.post(
        "/customer/new", json={"user_id": "acme", "max_budget": 0.05}, headers=bearer(MASTER_KEY)
    )
    assert made.status_code == 200, made.text
    key = await new_key(client)  # the key itself has no budget
    body = {"model": "dall-e-3", "prompt": "x", "size": "1024x1024", "quality": "standard"}
    headers = bearer(key)
    if via == "header":
        headers["x-litellm-end-user-id"] = "acme"
    else:
        body["user"] = "acme"
    first = await client.post("/v1/images/generations", json=body, headers=headers)
    assert first.status_code == 200, first.text  # $0.04 of the $0.05
    before = len(side.requests)
    second = await client.post("/v1/images/generations", json=body, headers=headers)
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "budget_exceeded"
    assert len(side.requests) == before
    info = await client.get(
        "/customer/info", params={"end_user_id": "acme"}, headers=bearer(MASTER_KEY)
    )
    assert info.json()["spend"] == pytest.approx(0.04)


async def test_an_unpriced_side_model_is_refused_to_a_budgeted_key(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    budgeted = await new_key(client, max_budget=5)
    before = len(side.requests)
    resp = await client.post(
        "/v1/images/generations",
        json={"model": "img-unpriced", "prompt": "x"},
        headers=bearer(budgeted),
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "model_unpriced"
    assert len(side.requests) == before
    # Without a budget the call is served (and counts as free).
    free = await new_key(client)
    served = await client.post(
        "/v1/images/generations",
        json={"model": "img-unpriced", "prompt": "x"},
        headers=bearer(free),
    )
    assert served.status_code == 200


async def test_allow_unpriced_serves_an_unpriced_side_model_to_a_budgeted_key(
    tmp_path: Path, side: FakeSideUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ALLOW_UNPRICED", "1")
    gw = await InProcessGateway.build(tmp_path, extra_models(side))
    async with gw.running() as client:
        key = await new_key(client, max_budget=5)
        resp = await client.post(
            "/v1/images/generations",
            json={"model": "img-unpriced", "prompt": "x"},
            headers=bearer(key),
        )
        assert resp.status_code == 200, resp.text
        assert spend(gw, key) == 0.0


async def test_model_info_shows_the_unit_prices_and_their_source(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    resp = await client.get("/model/info", headers=bearer(MASTER_KEY))
    assert resp.status_code == 200
    info = {m["model_name"]: m["model_info"] for m in resp.json()["data"]}
    assert info["dall-e-3"]["output_cost_per_image"] == pytest.approx(0.12)
    assert info["dall-e-3"]["price_source"] == "https://openai.com/api/pricing"
    assert info["dall-e-3"]["price_source_date"]
    assert info["whisper"]["input_cost_per_second"] == pytest.approx(0.0001)
    assert info["tts"]["input_cost_per_character"] == pytest.approx(15e-6)
    assert info["rerank"]["input_cost_per_query"] == pytest.approx(0.002)
    # A model_info price wins over the table, and says so.
    assert info["bge-rerank"]["input_cost_per_query"] == pytest.approx(0.001)
    assert info["bge-rerank"]["price_source"] == "model_info"
