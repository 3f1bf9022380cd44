"""Images, audio, moderations and rerank through the gateway, with the OpenAI SDK where it
has the method: routed to the model group's deployment with the gateway's credential,
authenticated, limited, reserved and billed in each endpoint's unit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, free_port
from tests.endpoints.conftest import model_entry, new_key, sdk, side_config, spend
from tests.fakes.side_upstream import AUDIO_SECONDS, FakeSideUpstream
from tests.inprocess import InProcessGateway, bearer


async def test_images_are_billed_per_image_by_size_and_quality(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    raw = await sdk(client, key).images.with_raw_response.generate(
        model="dall-e-3", prompt="a fox", n=2, size="1024x1792", quality="hd"
    )
    images = raw.parse()
    assert len(images.data or []) == 2
    # Two hd 1024x1792 dall-e-3 images at $0.12 each.
    assert float(raw.headers["x-tollway-response-cost"]) == pytest.approx(0.24)
    assert raw.headers["x-tollway-model"] == "openai/dall-e-3"
    assert spend(gw, key) == pytest.approx(0.24)
    sent = side.requests[-1]
    assert sent["path"] == "/v1/images/generations"
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert b'"model":"dall-e-3"' in sent["raw"]


async def test_an_image_over_the_budget_is_refused_before_the_upstream(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client, max_budget=0.1)
    before = len(side.requests)
    resp = await client.post(
        "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "x", "n": 2, "quality": "hd", "size": "1024x1792"},
        headers=bearer(key),
    )
    assert resp.status_code == 429
    assert resp.json()["error"]["type"] == "budget_exceeded"
    assert len(side.requests) == before
    assert spend(gw, key) == 0.0


async def test_rpm_limits_the_side_endpoints_too(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    key = await new_key(client, rpm_limit=1)
    body = {"model": "moderation", "input": "hello"}
    first = await client.post("/moderations", json=body, headers=bearer(key))
    assert first.status_code == 200
    second = await client.post("/v1/moderations", json=body, headers=bearer(key))
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert int(second.headers["retry-after"]) >= 1


async def test_a_bad_key_is_refused_and_nothing_reaches_the_upstream(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    before = len(side.requests)
    resp = await client.post(
        "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "x"},
        headers=bearer("sk-not-a-key"),
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert len(side.requests) == before


async def test_a_key_limited_to_other_models_may_not_generate_images(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    key = await new_key(client, models=["gpt-test"])
    resp = await client.post(
        "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"}, headers=bearer(key)
    )
    assert resp.status_code == 403


async def test_transcription_is_a_multipart_upload_billed_per_second(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    raw = await sdk(client, key).audio.transcriptions.with_raw_response.create(
        model="whisper", file=("hello.mp3", b"\x00" * 4000, "audio/mpeg")
    )
    assert raw.parse().text == "hello world"
    sent = side.requests[-1]
    assert sent["path"] == "/v1/audio/transcriptions"
    assert b'name="model"\r\n\r\nwhisper-1' in sent["raw"]
    assert b"\x00" * 4000 in sent["raw"]
    # 12.5 s reported, billed as 13 whole seconds at whisper-1's $0.0001 a second.
    assert AUDIO_SECONDS == 12.5
    assert spend(gw, key) == pytest.approx(13 * 0.0001)


async def test_translation_text_reply_is_billed_from_the_file_size(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/audio/translations",
        files={"file": ("a.mp3", b"\x01" * 32_000, "audio/mpeg")},
        data={"model": "whisper", "response_format": "text"},
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    assert resp.text == "hello world"
    assert resp.headers["content-type"].startswith("text/plain")
    # No duration in a text reply: 32 kB at 128 kbit/s is 2 s.
    assert spend(gw, key) == pytest.approx(2 * 0.0001)


async def test_an_audio_upload_over_the_limit_is_refused_with_413(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    _gw, client = gateway
    resp = await client.post(
        "/v1/audio/transcriptions",
        content=b"x" * 16,
        headers={
            **bearer(await new_key(client)),
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(26 * 1024 * 1024),
        },
    )
    assert resp.status_code == 413


async def test_speech_is_billed_per_character(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    text = "Hello from the gateway"
    async with sdk(client, key).audio.speech.with_streaming_response.create(
        model="tts", voice="alloy", input=text
    ) as resp:
        audio = b"".join([chunk async for chunk in resp.iter_bytes()])
        assert resp.headers["content-type"] == "audio/mpeg"
    assert audio.startswith(b"\xff\xfb")
    assert len(audio) == 5 * 1024
    assert spend(gw, key) == pytest.approx(len(text) * 15e-6)


async def test_moderations_go_to_the_model_groups_deployment(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    key = await new_key(client)
    result = await sdk(client, key).moderations.create(model="moderation", input="hello")
    assert result.results[0].flagged is False
    assert b'"model":"omni-moderation-latest"' in side.requests[-1]["raw"]


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank"])
async def test_rerank_in_cohere_format_to_cohere(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream, path: str
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        path,
        json={"model": "rerank", "query": "fox", "documents": ["a fox", "a dog"], "top_n": 1},
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["results"] == [{"index": 0, "relevance_score": 0.9}]
    assert side.requests[-1]["path"] == "/v2/rerank"
    assert b'"model":"rerank-v3.5"' in side.requests[-1]["raw"]
    assert spend(gw, key) == pytest.approx(0.002)


async def test_rerank_to_an_openai_compatible_server_answers_in_cohere_format(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    gw, client = gateway
    key = await new_key(client)
    docs = [f"doc {i}" for i in range(150)]
    resp = await client.post(
        "/v2/rerank",
        json={"model": "bge-rerank", "query": "q", "documents": docs, "top_n": 2},
        headers=bearer(key),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert side.requests[-1]["path"] == "/v1/rerank"
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert body["results"][0]["relevance_score"] == 1.0
    # 150 documents: two search units at the deployment's $0.001 a query.
    assert body["meta"]["billed_units"]["search_units"] == 2
    assert spend(gw, key) == pytest.approx(0.002)


async def test_an_upstream_error_comes_back_in_the_contract_shape_and_is_not_billed(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    gw, client = gateway
    key = await new_key(client)
    resp = await client.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper"},
        files={"other": ("a.txt", b"x", "text/plain")},
        headers=bearer(key),
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "file"
    assert spend(gw, key) == 0.0


async def test_a_failed_deployment_is_retried_on_another_of_the_group(
    tmp_path: Path, side: FakeSideUpstream
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # The unreachable one weighs so much more that it is the first choice.
    pair = [(dead, 1e9), (f"{side.origin}/v1", 1e-9)]
    config = side_config(
        side,
        "".join(model_entry("pair", "openai/dall-e-2", b, {"weight": w}) for b, w in pair),
    )
    gw = await InProcessGateway.build(tmp_path, config)
    async with gw.running() as client:
        key = await new_key(client)
        resp = await client.post(
            "/v1/images/generations",
            json={"model": "pair", "prompt": "x", "size": "256x256"},
            headers=bearer(key),
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-tollway-attempted-retries"] == "1"
        assert side.requests[-1]["path"] == "/v1/images/generations"
        assert spend(gw, key) == pytest.approx(0.016)
