"""The semantic cache in the pipeline: a paraphrase hits, a near miss never does, and a
paraphrase in another conversation never does; the Redis cache shares answers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tests.cache.test_exact import CONFIG, config
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION
from tests.providers.scripted import Canned, ScriptedTransport


def ask(text: str, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": [*(history or []), {"role": "user", "content": text}]}


async def test_a_paraphrase_hits_and_a_near_miss_does_not(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(4)])
    gateway = await InProcessGateway.build(
        tmp_path, config(type="local-semantic"), transport=upstream
    )
    async with gateway.running() as client:
        first = await client.post(
            "/v1/chat/completions", json=ask("How do I reverse a list in Python?"), headers=bearer()
        )
        paraphrase = await client.post(
            "/v1/chat/completions",
            json=ask("What's the way to reverse a Python list?"),
            headers=bearer(),
        )
        near_miss = await client.post(
            "/v1/chat/completions", json=ask("How do I reverse a list in Rust?"), headers=bearer()
        )
        other_context = await client.post(
            "/v1/chat/completions",
            json=ask(
                "What's the way to reverse a Python list?",
                history=[{"role": "system", "content": "Answer in French."}],
            ),
            headers=bearer(),
        )
    assert first.headers["x-tollway-cache"] == "miss"
    assert paraphrase.headers["x-tollway-cache"] == "hit"
    similarity = float(paraphrase.headers["x-tollway-cache-similarity"])
    assert similarity == float(paraphrase.headers["x-litellm-semantic-similarity"])
    assert 0.8 < similarity <= 1.0
    assert near_miss.headers["x-tollway-cache"] == "miss"
    assert other_context.headers["x-tollway-cache"] == "miss"
    assert len(upstream.sent) == 3


async def test_the_redis_cache_is_shared_by_two_gateways(tmp_path: Path, redis_server: Any) -> None:
    redis = f"redis://127.0.0.1:{redis_server.port}/0"
    text = config(type="redis", redis_url=redis, namespace="shared")
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    for name in ("one", "two"):
        await asyncio.to_thread((tmp_path / name).mkdir)
    one = await InProcessGateway.build(tmp_path / "one", text, transport=upstream)
    two = await InProcessGateway.build(tmp_path / "two", text, transport=upstream)
    async with one.running() as first, two.running() as second:
        miss = await first.post("/v1/chat/completions", json=ask("shared?"), headers=bearer())
        hit = await second.post("/v1/chat/completions", json=ask("shared?"), headers=bearer())
    assert miss.headers["x-tollway-cache"] == "miss"
    assert hit.headers["x-tollway-cache"] == "hit"
    assert len(upstream.sent) == 1


async def test_a_redis_that_is_down_is_a_miss_not_an_error(tmp_path: Path) -> None:
    text = config(type="redis", redis_url="redis://127.0.0.1:9/0")
    upstream = ScriptedTransport(Canned.json(COMPLETION), Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, text, transport=upstream)
    async with gateway.running() as client:
        for _ in range(2):
            response = await client.post("/v1/chat/completions", json=ask("x"), headers=bearer())
            assert response.status_code == 200
            assert response.headers["x-tollway-cache"] == "miss"


def test_an_unknown_cache_type_stops_start_up(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(params="    type: memcached"))
    # The config's os.environ/ references must be set: an unset one stops start-up first.
    env = {**os.environ, "TEST_UPSTREAM_KEY": "sk-up", "TEST_MASTER_KEY": "sk-master"}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "cache_params.type" in result.stderr and "memcached" in result.stderr
    assert "Traceback" not in result.stderr
