"""``POST /v1/responses`` with the official ``openai`` SDK, unchanged, against the gateway.

One gateway, three deployments: ``gpt-test`` (the shared fake OpenAI upstream), ``gpt-tools``
(the OpenAI conformance fake, which answers ``CASE tools`` with a function call) and
``bedrock`` (the Bedrock conformance fake: Responses → chat → Converse and back).

The translation itself, without a gateway, is in ``tests/dialects/test_responses.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml

from tests.conftest import MASTER_KEY, GatewayProcess, free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import REPLY_TEXT, FakeOpenAI
from tests.providers.conformance import (
    TOOL_ARGS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_PARAMETERS,
    TOOL_RESULT,
    ProviderHarness,
)
from tests.providers.harness_bedrock import BedrockHarness
from tests.providers.harness_openai import OpenAIHarness

TOOL_MODELS = ("gpt-tools", "bedrock")
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": TOOL_NAME,
    "description": "The weather in a city",
    "parameters": TOOL_PARAMETERS,
}


class Setup:
    def __init__(
        self, gateway: GatewayProcess, upstream: FakeOpenAI, fakes: dict[str, ProviderHarness]
    ) -> None:
        self.gateway = gateway
        self.upstream = upstream
        self.fakes = fakes
        self._client: openai.OpenAI | None = None

    def client(self) -> openai.OpenAI:
        """One SDK client for the module, closed with the gateway (no socket left open)."""
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=f"{self.gateway.url}/v1", api_key=MASTER_KEY, max_retries=0
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def spend_row(self, call_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = httpx.get(
                f"{self.gateway.url}/spend/logs",
                headers={"authorization": f"Bearer {MASTER_KEY}"},
            ).json()
            for row in rows:
                if row["call_id"] == call_id:
                    return dict(row)
            time.sleep(0.02)
        raise AssertionError(f"no spend-log row for {call_id}")


@pytest.fixture(scope="module")
def setup(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fakes: dict[str, ProviderHarness] = {"gpt-tools": OpenAIHarness(), "bedrock": BedrockHarness()}
    for fake in fakes.values():
        fake.start()
    gateway = None
    try:
        config = yaml.safe_load(gateway_config(fake_openai, free_port()))
        config["model_list"] += [
            {
                "model_name": name,
                "litellm_params": fake.litellm_params(name),
                "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            }
            for name, fake in fakes.items()
        ]
        config["router_settings"] = {"num_retries": 0}
        gateway = start_gateway(tmp_path_factory.mktemp("responses"), yaml.safe_dump(config))
        ready = Setup(gateway, fake_openai, fakes)
        try:
            yield ready
        finally:
            ready.close()
    finally:
        if gateway is not None:
            gateway.stop()
        for fake in fakes.values():
            fake.stop()


def test_text_response_with_usage(setup: Setup) -> None:
    raw = setup.client().responses.with_raw_response.create(
        model="gpt-test",
        instructions="be brief",
        input="Say hello",
        max_output_tokens=50,
        temperature=0.5,
    )
    response = raw.parse()
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == REPLY_TEXT
    (message,) = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert response.usage is not None
    assert response.usage.input_tokens == 11
    assert response.usage.output_tokens == len(REPLY_TEXT.split(" "))
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 3
    sent = setup.upstream.last_request()["json"]
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["max_completion_tokens"] == 50
    assert sent["temperature"] == 0.5
    row = setup.spend_row(raw.headers["x-tollway-call-id"])
    assert (row["prompt_tokens"], row["estimated"]) == (11, False)


def test_function_tools_and_parts_reach_the_upstream_as_chat(setup: Setup) -> None:
    setup.client().responses.create(
        model="gpt-test",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            }
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": TOOL_NAME},
        text={"format": {"type": "json_object"}},
    )
    sent = setup.upstream.last_request()["json"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "description": "The weather in a city",
                "parameters": TOOL_PARAMETERS,
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": TOOL_NAME}}
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_function_call_output(setup: Setup, model: str) -> None:
    response = setup.client().responses.create(
        model=model,
        input="CASE tools",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
        max_output_tokens=64,
    )
    assert response.status == "completed"
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == TOOL_NAME
    assert call.call_id == TOOL_CALL_ID
    assert orjson.loads(call.arguments) == TOOL_ARGS
    assert response.usage is not None and response.usage.input_tokens == 10


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_function_call_round_trip(setup: Setup, model: str) -> None:
    arguments = orjson.dumps(TOOL_ARGS).decode()
    response = setup.client().responses.create(
        model=model,
        input=[
            {"role": "user", "content": "CASE tool_result"},
            {
                "type": "function_call",
                "call_id": TOOL_CALL_ID,
                "name": TOOL_NAME,
                "arguments": arguments,
            },
            {"type": "function_call_output", "call_id": TOOL_CALL_ID, "output": TOOL_RESULT},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=64,
    )
    assert response.output_text == f"result:{TOOL_RESULT}"


def test_streamed_text_events(setup: Setup) -> None:
    with setup.client().responses.create(
        model="gpt-test", input="Say hello", stream=True
    ) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == REPLY_TEXT
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == REPLY_TEXT
    assert completed.response.usage is not None
    assert completed.response.usage.input_tokens == 11
    # The gateway asked for the usage chunk itself; the client did not see chat chunks.
    assert setup.upstream.last_request()["json"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_streamed_function_call_events(setup: Setup, model: str) -> None:
    with setup.client().responses.create(
        model=model,
        input="CASE stream_tools",
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=64,
        stream=True,
    ) as stream:
        events = list(stream)
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) >= 2
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert orjson.loads(done.arguments) == TOOL_ARGS
    assert "".join(deltas) == done.arguments
    completed = events[-1]
    assert completed.type == "response.completed"
    (call,) = completed.response.output
    assert call.type == "function_call"
    assert call.name == TOOL_NAME
    assert orjson.loads(call.arguments) == TOOL_ARGS
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 5


def test_the_sdks_stream_helper_accumulates_the_events(setup: Setup) -> None:
    with setup.client().responses.stream(model="gpt-test", input="Say hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == REPLY_TEXT


def test_streams_are_billed(setup: Setup) -> None:
    with httpx.stream(
        "POST",
        f"{setup.gateway.url}/v1/responses",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "bedrock", "input": "CASE stream_text", "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b"".join(response.iter_bytes())
        call_id = response.headers["x-tollway-call-id"]
    assert b"event: response.completed\n" in body
    assert b"[DONE]" not in body
    row = setup.spend_row(call_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (10, 5, False)


def test_a_stream_that_breaks_ends_with_error_and_response_failed(setup: Setup) -> None:
    with setup.client().responses.create(
        model="stream-break", input="Say hello", stream=True
    ) as stream:
        events = list(stream)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None


def test_errors_arrive_as_the_sdks_exceptions(setup: Setup) -> None:
    client = setup.client()
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="gpt-test", input="hi", previous_response_id="resp_1")
    with pytest.raises(openai.BadRequestError, match="function tools only"):
        client.responses.create(
            model="gpt-test",
            input="hi",
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
        )
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="throttled", input="hi")
