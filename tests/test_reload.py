"""SIGHUP reloads config.yaml in a real gateway process: atomically, in-flight requests finish
on the old config, and a bad file is refused (logged) with the old config kept."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.server.app import inference_routes
from proxy.server.reload import Reloader
from tests.conftest import MASTER_KEY, GatewayProcess, chat_body, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway, bearer

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def config(upstream: FakeOpenAI, models: dict[str, str]) -> str:
    lines = ["model_list:"]
    for name, model in models.items():
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
        ]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[GatewayProcess]:
    text = config(fake_openai, {"alpha": "fake-ok", "medium": "fake-medium-stream"})
    proc = start_gateway(tmp_path, text)
    yield proc
    proc.stop()


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)


async def models(client: httpx.AsyncClient) -> set[str]:
    reply = await client.get("/v1/models", headers=AUTH)
    return {m["id"] for m in reply.json()["data"]}


async def until(condition_s: float, check: object) -> float:
    started = time.monotonic()
    while time.monotonic() - started < condition_s:
        if await check():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {condition_s} s")


async def test_sighup_swaps_the_model_list_while_a_stream_in_flight_finishes_on_the_old_one(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        body = chat_body("medium", stream=True)
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as old:
            assert old.status_code == 200
            chunks = old.aiter_text()
            text = await anext(chunks)
            await write(tmp_path / "config.yaml", config(fake_openai, {"beta": "fake-ok"}))
            gateway.proc.send_signal(signal.SIGHUP)
            await until(5, lambda: _has(client, "beta"))
            # The stream began on the old config: it runs to its end on it.
            async for piece in chunks:
                text += piece
        assert text.rstrip().endswith("data: [DONE]")
        assert text.count("tock") == 20

        assert await models(client) == {"beta"}
        new = await client.post("/v1/chat/completions", json=chat_body("beta"), headers=AUTH)
        assert new.status_code == 200
        gone = await client.post("/v1/chat/completions", json=chat_body("alpha"), headers=AUTH)
        assert gone.status_code == 404
    assert "config reloaded" in await asyncio.to_thread(gateway.logs)


async def _has(client: httpx.AsyncClient, name: str) -> bool:
    return name in await models(client)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("model_list: [\n  - {", id="not-yaml"),
        pytest.param(
            "model_list:\n  - model_name: x\n    litellm_params:\n      model: 42\n",
            id="bad-field",
        ),
    ],
)
async def test_a_bad_file_is_refused_with_the_error_logged_and_the_old_config_kept(
    gateway: GatewayProcess, tmp_path: Path, bad: str
) -> None:
    await write(tmp_path / "config.yaml", bad)
    gateway.proc.send_signal(signal.SIGHUP)

    async def refused() -> bool:
        return "config reload refused" in await asyncio.to_thread(gateway.logs)

    await until(5, refused)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        assert await models(client) == {"alpha", "medium"}
        reply = await client.post("/v1/chat/completions", json=chat_body("alpha"), headers=AUTH)
        assert reply.status_code == 200
    assert gateway.proc.poll() is None
    assert "Traceback" not in await asyncio.to_thread(gateway.logs)


MOCK = f"""\
model_list:
  - model_name: m
    litellm_params:
      model: mock/mock-gpt
general_settings:
  master_key: {MASTER_KEY}
"""

WITH_GUARDRAIL_AND_CACHE = (
    MOCK
    + """\
router_settings:
  num_retries: 5
litellm_settings:
  cache: true
guardrails:
  - guardrail_name: words
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
      blocked_words:
        - keyword: project-falcon
          action: BLOCK
"""
)


async def test_reload_swaps_router_settings_guardrails_and_cache_in_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    await write(path, MOCK)
    gw = await InProcessGateway.build(tmp_path, MOCK, config=str(path))
    app = gw.app
    reloader = Reloader(
        gw.state, lambda: setattr(app, "hot", inference_routes(gw.state, app.post_call))
    )
    falcon = {"model": "m", "messages": [{"role": "user", "content": "about project-falcon"}]}
    async with gw.running() as client:
        assert (
            await client.post("/v1/chat/completions", json=falcon, headers=bearer())
        ).status_code == 200
        assert gw.state.cache is None and not gw.state.guardrails.configured
        old_hot, old_router = app.hot, gw.state.router

        await write(path, WITH_GUARDRAIL_AND_CACHE)
        assert await reloader.reload() is True

        assert app.hot is not old_hot and gw.state.router is not old_router
        assert gw.state.config.router_settings.num_retries == 5
        assert gw.state.cache is not None and gw.state.guardrails.configured
        blocked = await client.post("/v1/chat/completions", json=falcon, headers=bearer())
        assert blocked.status_code == 400
        assert blocked.json()["error"]["type"] == "guardrail_error"

        # A file that does not build (unknown provider) leaves all of it in place.
        await write(path, MOCK.replace("mock/mock-gpt", "no-such-provider/x"))
        live = app.hot
        assert await reloader.reload() is False
        assert app.hot is live and gw.state.guardrails.configured
    await reloader.uninstall()


async def test_a_refused_reload_does_not_log_the_text_of_the_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    await write(path, MOCK)
    gw = await InProcessGateway.build(tmp_path, MOCK, config=str(path))
    reloader = Reloader(gw.state, lambda: None)
    await write(path, MOCK + "  api_key: sk-leak: [\n")
    assert await reloader.reload() is False
    assert "config reload refused" in caplog.text
    assert "sk-leak" not in caplog.text
