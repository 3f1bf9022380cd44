"""The exact cache in the pipeline, in process: hits are real replies, streams are replayed
as streams, tenants never share, controls are honoured, hits cost nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, STREAM, chat
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
litellm_settings:
  cache: true
  cache_params:
{params}
"""


def config(**params: Any) -> str:
    lines = [f"    {k}: {orjson.dumps(v).decode()}" for k, v in {"type": "local", **params}.items()]
    return CONFIG.format(params="\n".join(lines))


def contents(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    out.append(piece)
    return out


async def new_key(client: Any, **fields: Any) -> str:
    made = await client.post("/key/generate", json=fields, headers=bearer())
    assert made.status_code == 200, made.text
    return str(made.json()["key"])


async def test_a_repeated_request_is_answered_from_the_cache_for_free(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=1.0)
        first = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
        second = await client.post(
            "/v1/chat/completions",
            json=chat(user="someone", metadata={"a": 1}),
            headers=bearer(key),
        )
        await gateway.state.flusher.flush()
        logs = (await client.get("/spend/logs", params={"api_key": key}, headers=bearer())).json()
        report = (
            await client.get("/global/spend/report", params={"group_by": "key"}, headers=bearer())
        ).json()
    assert first.headers["x-tollway-cache"] == "miss"
    assert second.headers["x-tollway-cache"] == "hit"
    assert second.headers["x-tollway-cache-key"] == first.headers["x-tollway-cache-key"]
    assert second.headers["x-litellm-cache-key"] == first.headers["x-tollway-cache-key"]
    assert len(upstream.sent) == 1
    hit = second.json()
    assert hit["choices"][0]["message"]["content"] == "hi there"
    assert hit["id"] != COMPLETION["id"]
    assert float(second.headers["x-tollway-response-cost"]) == 0
    cached = [row for row in logs if row["cache_hit"]]
    assert len(cached) == 1 and cached[0]["spend"] == 0
    assert cached[0]["saved_cost"] == pytest.approx(10e-6 + 4e-6)
    assert report[0]["cache_hits"] == 1
    assert report[0]["cache_savings"] == pytest.approx(10e-6 + 4e-6)


async def test_a_stream_is_stored_once_complete_and_replayed_as_it_was_chunked(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=9))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        first = await client.post("/v1/chat/completions", json=chat(stream=True), headers=bearer())
        replay = await client.post(
            "/v1/chat/completions",
            json=chat(stream=True, stream_options={"include_usage": True}),
            headers=bearer(),
        )
        as_json = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert contents(first.text) == ["Hel", "lo"]
    assert replay.headers["x-tollway-cache"] == "hit"
    assert contents(replay.text) == ["Hel", "lo"]
    assert '"usage":{"prompt_tokens":7' in replay.text
    assert replay.text.rstrip().endswith("data: [DONE]")
    assert as_json.headers["x-tollway-cache"] == "hit"
    assert as_json.json()["choices"][0]["message"]["content"] == "Hello"
    assert len(upstream.sent) == 1


async def test_a_json_entry_serves_a_streaming_request(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        streamed = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer()
        )
    assert streamed.headers["x-tollway-cache"] == "hit"
    assert "".join(contents(streamed.text)) == "hi there"
    assert '"usage"' not in streamed.text  # the client did not ask for it
    assert streamed.text.rstrip().endswith("data: [DONE]")


async def test_a_stream_that_fails_is_never_stored(tmp_path: Path) -> None:
    # An Anthropic upstream stream cut before message_stop: an error, never stored.
    cut = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
        b'"model":"c","usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"par"}}\n\n'
    )
    anthropic = config().replace("openai/gpt-x-upstream", "anthropic/claude-x")
    upstream = ScriptedTransport(Canned.stream(cut, piece=7), Canned.stream(cut, piece=7))
    gateway = await InProcessGateway.build(tmp_path, anthropic, transport=upstream)
    async with gateway.running() as client:
        await client.post("/v1/chat/completions", json=chat(stream=True), headers=bearer())
        again = await client.post("/v1/chat/completions", json=chat(stream=True), headers=bearer())
    assert again.headers["x-tollway-cache"] == "miss"
    assert len(upstream.sent) == 2


async def test_two_teams_never_see_each_others_answers(tmp_path: Path) -> None:
    other = {
        **COMPLETION,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "team b"},
                "finish_reason": "stop",
            }
        ],
    }
    upstream = ScriptedTransport(Canned.json(COMPLETION), Canned.json(other))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        team_a = (await client.post("/team/new", json={}, headers=bearer())).json()["team_id"]
        team_b = (await client.post("/team/new", json={}, headers=bearer())).json()["team_id"]
        key_a = await new_key(client, team_id=team_a)
        key_b = await new_key(client, team_id=team_b)
        a = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key_a))
        b = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key_b))
        a_again = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key_a))
    assert b.headers["x-tollway-cache"] == "miss"
    assert b.json()["choices"][0]["message"]["content"] == "team b"
    assert a_again.headers["x-tollway-cache"] == "hit"
    assert a_again.json()["choices"][0]["message"]["content"] == "hi there"
    assert a.headers["x-tollway-cache-key"] != b.headers["x-tollway-cache-key"]


async def test_request_controls_bypass_skip_storing_and_expire(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(5)])
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        no_store = await client.post(
            "/v1/chat/completions", json=chat(cache={"no-store": True}), headers=bearer()
        )
        stored = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        no_cache = await client.post(
            "/v1/chat/completions", json=chat(), headers=bearer() | {"cache-control": "no-cache"}
        )
        gateway.clock.advance(30)
        too_old = await client.post(
            "/v1/chat/completions", json=chat(cache={"s-maxage": 10}), headers=bearer()
        )
        fresh_enough = await client.post(
            "/v1/chat/completions", json=chat(), headers=bearer() | {"cache-control": "s-maxage=60"}
        )
    assert no_store.headers["x-tollway-cache"] == "miss"
    assert stored.headers["x-tollway-cache"] == "miss"
    assert no_cache.headers["x-tollway-cache"] == "miss"
    assert too_old.headers["x-tollway-cache"] == "miss"
    assert fresh_enough.headers["x-tollway-cache"] == "hit"
    # The controls are the gateway's: they never reach the upstream.
    assert all("cache" not in sent.json for sent in upstream.sent)


async def test_a_key_may_be_limited_in_the_controls_it_uses(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, allowed_cache_controls=["no-store"])
        refused = await client.post(
            "/v1/chat/completions", json=chat(cache={"no-cache": True}), headers=bearer(key)
        )
        allowed = await client.post(
            "/v1/chat/completions", json=chat(cache={"no-store": True}), headers=bearer(key)
        )
    assert refused.status_code == 403
    assert "no-cache" in refused.json()["error"]["message"]
    assert allowed.status_code == 200


async def test_default_off_caches_only_when_asked(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(3)])
    gateway = await InProcessGateway.build(tmp_path, config(mode="default_off"), transport=upstream)
    async with gateway.running() as client:
        plain = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        await client.post(
            "/v1/chat/completions", json={**chat(), "use-cache": True}, headers=bearer()
        )
        asked = await client.post(
            "/v1/chat/completions", json={**chat(), "use-cache": True}, headers=bearer()
        )
    assert plain.headers["x-tollway-cache"] == "bypass"
    assert asked.headers["x-tollway-cache"] == "hit"
    assert "use-cache" not in upstream.last.raw.decode()


EMBEDDING_REPLY = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
    "model": "gpt-x-upstream",
    "usage": {"prompt_tokens": 2, "total_tokens": 2},
}


async def test_embeddings_and_messages_are_cached_too(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(EMBEDDING_REPLY), Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    messages = {"model": "gpt-x", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    async with gateway.running() as client:
        body = {"model": "gpt-x", "input": "hello"}
        await client.post("/v1/embeddings", json=body, headers=bearer())
        embedded = await client.post("/v1/embeddings", json=body, headers=bearer())
        await client.post("/v1/messages", json=messages, headers=bearer())
        message = await client.post("/v1/messages", json=messages, headers=bearer())
    assert embedded.headers["x-tollway-cache"] == "hit"
    assert embedded.json()["data"][0]["embedding"] == [0.5, 0.25]
    assert message.headers["x-tollway-cache"] == "hit"
    assert message.json()["content"] == [{"type": "text", "text": "hi there"}]
    assert len(upstream.sent) == 2


async def test_the_cache_admin_routes(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(3)])
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        first = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        ping = await client.get("/cache/ping", headers=bearer())
        key = first.headers["x-tollway-cache-key"]
        deleted = await client.post("/cache/delete", json={"keys": [key]}, headers=bearer())
        after_delete = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        flushed = await client.post("/cache/flushall", headers=bearer())
        after_flush = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        virtual = await new_key(client)
        refused = await client.post("/cache/flushall", headers=bearer(virtual))
        metrics = await client.get("/metrics")
    assert ping.json()["status"] == "healthy"
    assert deleted.json()["deleted"] == 1
    assert after_delete.headers["x-tollway-cache"] == "miss"
    assert flushed.json()["deleted"] == 1
    assert after_flush.headers["x-tollway-cache"] == "miss"
    assert refused.status_code == 403
    assert 'tollway_cache_requests_total{result="miss"} 3' in metrics.text
