"""``POST /v1/messages`` with the official ``anthropic`` SDK, unchanged, against the gateway.

Two deployments behind one gateway: ``claude`` (an ``anthropic/`` deployment: the request
passes through as bytes) and ``gpt`` (an OpenAI deployment: translated both ways), each a
conformance fake on port 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest
import yaml

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.providers.conformance import (
    IMAGE_DATA_URL,
    PNG_BASE64,
    TOOL_ARGS,
    TOOL_NAME,
    TOOL_PARAMETERS,
    ProviderHarness,
)
from tests.providers.harness_anthropic import AnthropicHarness
from tests.providers.harness_openai import OpenAIHarness

MODELS = ("claude", "gpt")
WEATHER: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "The weather in a city",
    "input_schema": TOOL_PARAMETERS,
}


class Setup:
    def __init__(self, gateway: GatewayProcess, fakes: dict[str, ProviderHarness]) -> None:
        self.gateway = gateway
        self.fakes = fakes

    def client(self, key: str = MASTER_KEY) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=key, max_retries=0)

    def spend_row(self, model: str, call_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = httpx.get(
                f"{self.gateway.url}/spend/logs",
                params={"model": model},
                headers={"authorization": f"Bearer {MASTER_KEY}"},
            ).json()
            for row in rows:
                if row["call_id"] == call_id:
                    return dict(row)
            time.sleep(0.02)
        raise AssertionError(f"no spend-log row for {call_id}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fakes: dict[str, ProviderHarness] = {"claude": AnthropicHarness(), "gpt": OpenAIHarness()}
    for fake in fakes.values():
        fake.start()
    gateway = None
    try:
        model_list = [
            {
                "model_name": name,
                "litellm_params": fake.litellm_params(name),
                "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            }
            for name, fake in fakes.items()
        ]
        config = {
            "model_list": model_list,
            "router_settings": {"num_retries": 0, "allowed_fails": 1_000_000, "cooldown_time": 0},
            "general_settings": {"master_key": "os.environ/TEST_MASTER_KEY"},
        }
        gateway = start_gateway(tmp_path_factory.mktemp("messages"), yaml.safe_dump(config))
        yield Setup(gateway, fakes)
    finally:
        if gateway is not None:
            gateway.stop()
        for fake in fakes.values():
            fake.stop()


@pytest.mark.parametrize("model", MODELS)
def test_text_reply_with_usage_and_cost(setup: Setup, model: str) -> None:
    with setup.client() as client:
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=64,
            system="be brief",
            messages=[{"role": "user", "content": "CASE system"}],
        )
        message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model in (model, "claude-fake-1")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "system:be brief"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 8
    assert message.usage.cache_read_input_tokens == 2
    assert message.usage.output_tokens == 5
    assert float(raw.headers["x-tollway-response-cost"]) > 0
    row = setup.spend_row(model, raw.headers["x-tollway-call-id"])
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (10, 5, False)


def test_anthropic_deployment_receives_the_clients_bytes(setup: Setup) -> None:
    fake = setup.fakes["claude"]
    with setup.client() as client:
        client.messages.create(
            model="claude",
            max_tokens=64,
            extra_body={"top_k": 5},
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "CASE text",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                }
            ],
            extra_headers={"anthropic-beta": "token-efficient-tools-2025-02-19"},
        )
    received = fake.last_received()
    body = received.json
    assert body["model"] == "claude-fake-1"
    assert body["top_k"] == 5
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert received.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    assert received.headers["x-api-key"] == fake.api_key
    assert MASTER_KEY not in str(received.headers)


def test_other_providers_receive_a_translated_chat_request(setup: Setup) -> None:
    fake = setup.fakes["gpt"]
    with setup.client() as client:
        message = client.messages.create(
            model="gpt",
            max_tokens=32,
            extra_body={"temperature": 0.5},
            stop_sequences=["END"],
            metadata={"user_id": "u-7"},
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "CASE image"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": PNG_BASE64,
                            },
                        },
                    ],
                }
            ],
        )
    assert message.content[0].text == "image:image/png"  # type: ignore[union-attr]
    body = fake.last_request()
    assert body["model"] == "gpt-fake"
    assert body["max_tokens"] == 32
    assert body["temperature"] == 0.5
    assert body["stop"] == ["END"]
    assert body["user"] == "u-7"
    assert body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": IMAGE_DATA_URL},
    }


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_and_tool_result_round_trip(setup: Setup, model: str) -> None:
    ask = {"role": "user", "content": "CASE tools"}
    with setup.client() as client:
        first = client.messages.create(
            model=model,
            max_tokens=64,
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "auto"},
            messages=[ask],  # type: ignore[list-item]
        )
        assert first.stop_reason == "tool_use"
        (call,) = [block for block in first.content if block.type == "tool_use"]
        assert call.name == TOOL_NAME
        assert call.input == TOOL_ARGS
        second = client.messages.create(
            model=model,
            max_tokens=64,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": "CASE tool_result"},
                {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
                    ],
                },
            ],
        )
    assert second.content[0].text == "result:sunny"  # type: ignore[union-attr]
    if model == "gpt":
        sent = setup.fakes["gpt"].last_request()["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call.id
        assert orjson.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == TOOL_ARGS


@pytest.mark.parametrize("model", MODELS)
def test_streamed_text(setup: Setup, model: str) -> None:
    with (
        setup.client() as client,
        client.messages.stream(
            model=model, max_tokens=64, messages=[{"role": "user", "content": "CASE stream_text"}]
        ) as stream,
    ):
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert len(pieces) >= 2
    assert "".join(pieces) == "pong"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 5
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 10


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_call(setup: Setup, model: str) -> None:
    with (
        setup.client() as client,
        client.messages.stream(
            model=model,
            max_tokens=64,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "CASE stream_tools"}],
        ) as stream,
    ):
        partials = [e.partial_json for e in stream if e.type == "input_json"]
        message = stream.get_final_message()
    assert len([p for p in partials if p]) >= 2
    assert message.stop_reason == "tool_use"
    (call,) = [block for block in message.content if block.type == "tool_use"]
    assert call.name == TOOL_NAME
    assert call.input == TOOL_ARGS


def test_streams_are_billed_from_their_usage(setup: Setup) -> None:
    for model in MODELS:
        with httpx.stream(
            "POST",
            f"{setup.gateway.url}/v1/messages",
            headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
            json={
                "model": model,
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": "CASE stream_text"}],
            },
        ) as response:
            assert response.status_code == 200
            body = b"".join(response.iter_bytes())
            call_id = response.headers["x-tollway-call-id"]
        assert body.rstrip().endswith(b'data: {"type":"message_stop"}')
        row = setup.spend_row(model, call_id)
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (10, 5, False)
        assert row["spend"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_errors_arrive_as_the_sdks_exceptions(setup: Setup, model: str) -> None:
    def ask(case: str) -> None:
        with setup.client() as client:
            client.messages.create(
                model=model, max_tokens=8, messages=[{"role": "user", "content": f"CASE {case}"}]
            )

    with pytest.raises(anthropic.BadRequestError) as bad:
        ask("error_400")
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError) as auth:
        ask("error_401")
    assert setup.fakes[model].api_key not in str(auth.value.body)
    with pytest.raises(anthropic.RateLimitError):
        ask("error_429")
    with pytest.raises(anthropic.InternalServerError) as server:
        ask("error_500")
    assert server.value.status_code == 502


def test_gateway_errors_use_anthropics_shape(setup: Setup) -> None:
    with setup.client("sk-not-a-key") as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    with setup.client() as client, pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(
            model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    response = httpx.post(
        f"{setup.gateway.url}/v1/messages",
        headers={"x-api-key": MASTER_KEY},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
