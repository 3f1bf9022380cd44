"""The stages in order, in process: the real app over a scripted upstream and a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.inprocess import InProcessGateway, bearer
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
router_settings:
  num_retries: 1
"""

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x-upstream",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi there"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


USAGE_CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x-upstream",'
    b'"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}\n\n'
)
STREAM = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Hel"})
    + chunk({"content": "lo"}, "stop")
    + USAGE_CHUNK
    + b"data: [DONE]\n\n"
)


def chat(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": [{"role": "user", "content": content}], **extra}


async def new_key(client: Any, **fields: Any) -> str:
    response = await client.post("/key/generate", json=fields, headers=bearer())
    assert response.status_code == 200, response.text
    key: str = response.json()["key"]
    return key


async def test_chat_bytes_go_upstream_with_only_the_model_rewritten(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    body = b'{"model":"gpt-x","messages":[{"role":"user","content":"hello"}],"temperature":0.5}'
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions",
            content=body,
            headers=bearer() | {"content-type": "application/json"},
        )
    assert response.status_code == 200
    # The reply is the upstream's bytes, untouched.
    assert response.content == orjson.dumps(COMPLETION)
    sent = upstream.last
    assert sent.url == "http://upstream.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json == {**orjson.loads(body), "model": "gpt-x-upstream"}
    assert response.headers["x-tollway-model"] == "openai/gpt-x-upstream"
    assert float(response.headers["x-tollway-response-cost"]) == pytest.approx(10e-6 + 4e-6)


async def test_a_stream_is_relayed_and_billed_from_the_usage_chunk_the_gateway_asked_for(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=5))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=1.0)
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer(key)
        )
        assert response.status_code == 200
        # The client did not ask for usage: the usage chunk the gateway asked for is hidden.
        assert upstream.last.json["stream_options"] == {"include_usage": True}
        assert response.content == STREAM.replace(USAGE_CHUNK, b"")
        info = await client.get("/key/info", params={"key": key}, headers=bearer())
        assert info.json()["info"]["spend"] == pytest.approx(7e-6 + 4e-6)
        in_flight, reserved = gateway.state.ledger.outstanding()
    assert (in_flight, reserved) == (0, 0)


async def test_messages_to_an_openai_deployment_are_translated_both_ways(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    request = {
        "model": "gpt-x",
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}],
    }
    async with gateway.running() as client:
        response = await client.post(
            "/v1/messages", json=request, headers={"x-api-key": bearer()["authorization"][7:]}
        )
    assert response.status_code == 200
    sent = upstream.last.json
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert sent["model"] == "gpt-x-upstream"
    assert sent["max_tokens"] == 50
    message = response.json()
    assert message["type"] == "message"
    assert message["model"] == "gpt-x"
    assert message["content"] == [{"type": "text", "text": "hi there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 10
    assert message["usage"]["output_tokens"] == 2


async def test_a_messages_stream_from_an_openai_deployment_is_anthropic_events(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=3))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    request = {
        "model": "gpt-x",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    async with gateway.running() as client:
        response = await client.post("/v1/messages", json=request, headers=bearer())
    assert response.status_code == 200
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "content_block_delta" in events
    text = "".join(
        orjson.loads(line[6:])["delta"].get("text", "")
        for line in response.text.splitlines()
        if line.startswith("data: ") and '"content_block_delta"' in line
    )
    assert text == "Hello"
    delta = next(
        orjson.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: ") and '"message_delta"' in line
    )
    assert delta["usage"]["output_tokens"] == 2


async def test_an_rpm_slot_frees_when_the_clock_passes_the_window(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(3)])
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, rpm_limit=2)
        statuses = [
            (
                await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        gateway.clock.advance(61)
        again = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
    assert again.status_code == 200
    assert len(upstream.sent) == 3


async def test_a_key_expires_when_the_clock_passes_its_duration(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, duration="1h")
        assert (
            await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
        ).status_code == 200
        gateway.clock.advance(3601)
        expired = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
    assert expired.status_code == 401
    assert expired.json()["error"]["type"] == "authentication_error"


async def test_a_500_is_retried_and_the_call_billed_once(tmp_path: Path) -> None:
    upstream = ScriptedTransport(
        Canned.json({"error": {"message": "boom"}}, status=500), Canned.json(COMPLETION)
    )
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=1.0)
        response = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
        assert response.status_code == 200
        assert response.headers["x-tollway-attempted-retries"] == "1"
        call_id = response.headers["x-tollway-call-id"]
        await gateway.state.flusher.flush()
        logs = await client.get("/spend/logs", params={"api_key": key}, headers=bearer())
    rows = logs.json()
    assert [row["call_id"] for row in rows] == [call_id]
    assert rows[0]["spend"] == pytest.approx(10e-6 + 4e-6)
    assert len(upstream.sent) == 2


async def test_a_budget_too_small_is_refused_before_the_upstream_is_called(tmp_path: Path) -> None:
    upstream = ScriptedTransport()
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=0.000001)
        response = await client.post(
            "/v1/chat/completions", json=chat(max_tokens=1000), headers=bearer(key)
        )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "budget_exceeded"
    assert response.headers["x-should-retry"] == "false"
    assert upstream.sent == []


async def test_a_stream_cut_mid_way_ends_in_band_and_leaks_no_reservation(tmp_path: Path) -> None:
    # An Anthropic upstream that stops before message_stop: the client already has headers.
    config = CONFIG.replace("openai/gpt-x-upstream", "anthropic/claude-x").replace(
        "http://upstream.test/v1", "http://anthropic.test"
    )
    cut = (
        b'event: message_start\ndata: {"type":"message_start",'
        b'"message":{"id":"m1","model":"claude-x","usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"par"}}\n\n'
    )
    upstream = ScriptedTransport(Canned.stream(cut, piece=11))
    gateway = await InProcessGateway.build(tmp_path, config, transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=1.0)
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer(key)
        )
        assert response.status_code == 200
        assert b'"content":"par"' in response.content
        last = response.content.strip().splitlines()[-1]
        assert b'"error"' in last and b"[DONE]" not in response.content
        assert gateway.state.ledger.outstanding() == (0, 0)
