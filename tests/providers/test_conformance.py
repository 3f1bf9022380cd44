"""One table, every provider: each harness's fake server behind one real gateway.

See ``tests/providers/conformance.py`` for the contract a harness follows.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.providers.conformance import (
    CACHED_TOKENS,
    CASES,
    COMPLETION_TOKENS,
    IMAGE_DATA_URL,
    IMAGE_URL,
    JSON_REPLY,
    PROMPT_TOKENS,
    SYSTEM_TEXT,
    TOOL_ARGS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_PARAMETERS,
    TOOL_RESULT,
    ProviderHarness,
    error_status,
)

HERE = Path(__file__).parent
INPUT_COST = 0.000001
OUTPUT_COST = 0.000002


def _harness_modules() -> list[ModuleType]:
    # CONFORMANCE_ONLY=anthropic,openai runs a subset (while another harness is being written).
    only = {n for n in os.environ.get("CONFORMANCE_ONLY", "").split(",") if n}
    return [
        importlib.import_module(f"tests.providers.{path.stem}")
        for path in sorted(HERE.glob("harness_*.py"))
        if not only or path.stem.removeprefix("harness_") in only
    ]


HARNESSES: dict[str, ProviderHarness] = {
    module.HARNESS.name: module.HARNESS for module in _harness_modules()
}
TABLE = [
    pytest.param(name, case, id=f"{name}-{case}")
    for name, harness in HARNESSES.items()
    for case in CASES
    if case in harness.supports
]


class Conformance:
    def __init__(self, gateway: GatewayProcess, client: httpx.Client) -> None:
        self.gateway = gateway
        self.client = client


def _config() -> str:
    model_list = [
        {
            "model_name": f"conf-{name}",
            "litellm_params": harness.litellm_params(f"conf-{name}"),
            "model_info": {
                "input_cost_per_token": INPUT_COST,
                "output_cost_per_token": OUTPUT_COST,
            },
        }
        for name, harness in HARNESSES.items()
    ]
    config = {
        "model_list": model_list,
        # No retries and no cooldowns: every case is one upstream call, independent of the
        # error cases before it.
        "router_settings": {"num_retries": 0, "allowed_fails": 1_000_000, "cooldown_time": 0},
        "general_settings": {"master_key": "os.environ/TEST_MASTER_KEY"},
    }
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture(scope="module")
def conformance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conformance]:
    started: list[ProviderHarness] = []
    gateway: GatewayProcess | None = None
    try:
        for harness in HARNESSES.values():
            harness.start()
            started.append(harness)
        gateway = start_gateway(tmp_path_factory.mktemp("conformance"), _config())
        with httpx.Client(
            base_url=gateway.url,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=30,
        ) as client:
            yield Conformance(gateway, client)
    finally:
        if gateway is not None:
            gateway.stop()
        for harness in started:
            harness.stop()


_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "The weather in a city",
        "parameters": TOOL_PARAMETERS,
    },
}


def request_for(case: str, model: str) -> dict[str, Any]:
    """The OpenAI-format request the suite sends for ``case``."""
    ask: dict[str, Any] = {"role": "user", "content": f"CASE {case}"}
    body: dict[str, Any] = {"model": model, "messages": [ask], "max_tokens": 64}
    if case == "system":
        body["messages"] = [{"role": "system", "content": SYSTEM_TEXT}, ask]
    elif case == "multiturn":
        body["messages"] = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            ask,
        ]
    elif case in ("tools", "stream_tools"):
        body["tools"] = [_WEATHER_TOOL]
        body["tool_choice"] = "auto"
    elif case == "tool_result":
        body["tools"] = [_WEATHER_TOOL]
        call = {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": orjson.dumps(TOOL_ARGS).decode()},
        }
        body["messages"] = [
            ask,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": TOOL_RESULT},
        ]
    elif case in ("image", "image_url"):
        url = IMAGE_DATA_URL if case == "image" else IMAGE_URL
        ask["content"] = [
            {"type": "text", "text": f"CASE {case}"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    elif case == "json":
        body["response_format"] = {"type": "json_object"}
    if case.startswith("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def expected_text(case: str) -> str:
    return {
        "system": f"system:{SYSTEM_TEXT}",
        "multiturn": "turns:3",
        "tool_result": f"result:{TOOL_RESULT}",
        "image": "image:image/png",
        "image_url": f"image:{IMAGE_URL}",
        "json": JSON_REPLY,
    }.get(case, "pong")


def check_usage(usage: dict[str, Any], harness: ProviderHarness) -> None:
    assert usage["prompt_tokens"] == PROMPT_TOKENS
    assert usage["completion_tokens"] == COMPLETION_TOKENS
    assert usage["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS
    if harness.caching:
        assert usage["prompt_tokens_details"]["cached_tokens"] == CACHED_TOKENS


def check_billed(conformance: Conformance, model: str, call_id: str) -> None:
    # A stream settles right after its last byte is sent, so the row can trail the body.
    deadline = time.monotonic() + 5
    while True:
        rows = conformance.client.get("/spend/logs", params={"model": model}).json()
        row = next((r for r in rows if r["call_id"] == call_id), None)
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert row is not None, f"no spend-log row for call {call_id}"
    assert row["prompt_tokens"] == PROMPT_TOKENS
    assert row["completion_tokens"] == COMPLETION_TOKENS
    assert row["estimated"] is False
    assert row["spend"] > 0


def parse_stream(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    chunks: list[dict[str, Any]] = []
    done = False
    for event in raw.split(b"\n\n"):
        if not event.strip():
            continue
        assert event.startswith(b"data: "), event
        payload = event[6:]
        if payload == b"[DONE]":
            done = True
            continue
        assert not done, "an event after [DONE]"
        chunks.append(orjson.loads(payload))
    return chunks, done


@pytest.mark.parametrize(("provider", "case"), TABLE)
def test_provider_conforms(conformance: Conformance, provider: str, case: str) -> None:
    harness = HARNESSES[provider]
    model = f"conf-{provider}"
    body = request_for(case, model)
    hits = harness.hits
    response = conformance.client.post("/v1/chat/completions", json=body)
    assert harness.hits == hits + 1, "exactly one upstream call"
    status = error_status(case)
    if status is not None:
        assert response.status_code == (502 if status >= 500 else status), response.text
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}
        assert harness.api_key not in response.text
        return
    assert response.status_code == 200, response.text
    harness.check(case, harness.last_received())
    call_id = response.headers["x-tollway-call-id"]
    assert response.headers["x-tollway-model"].startswith(f"{provider}/")
    if body.get("stream"):
        check_stream(harness, case, response)
    else:
        check_completion(harness, case, response)
        assert float(response.headers["x-tollway-response-cost"]) > 0
    check_billed(conformance, model, call_id)


def check_completion(harness: ProviderHarness, case: str, response: httpx.Response) -> None:
    payload = response.json()
    assert payload["object"] == "chat.completion"
    choice = payload["choices"][0]
    message = choice["message"]
    assert message["role"] == "assistant"
    if case == "tools":
        assert choice["finish_reason"] == "tool_calls"
        (call,) = message["tool_calls"]
        assert call["type"] == "function"
        assert call["id"]
        assert call["function"]["name"] == TOOL_NAME
        assert orjson.loads(call["function"]["arguments"]) == TOOL_ARGS
    else:
        assert choice["finish_reason"] == "stop"
        assert message["content"] == expected_text(case)
        if case == "json":
            assert orjson.loads(message["content"]) == {"ok": True}
    check_usage(payload["usage"], harness)


def check_stream(harness: ProviderHarness, case: str, response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks, done = parse_stream(response.content)
    assert done, "the stream ends with data: [DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    with_choices = [c for c in chunks if c["choices"]]
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1, "one usage chunk, as include_usage asked"
    assert usage_chunks[0] is chunks[-1] and not chunks[-1]["choices"]
    check_usage(usage_chunks[0]["usage"], harness)
    deltas = [c["choices"][0]["delta"] for c in with_choices]
    finishes = [c["choices"][0]["finish_reason"] for c in with_choices]
    assert [f for f in finishes if f] == ["tool_calls" if case == "stream_tools" else "stop"]
    if case == "stream_text":
        pieces = [d["content"] for d in deltas if d.get("content")]
        assert len(pieces) >= 2
        assert "".join(pieces) == "pong"
        return
    calls = [call for d in deltas for call in d.get("tool_calls") or []]
    pieces = 1 if harness.whole_tool_calls else 2
    assert len(calls) >= pieces
    first = calls[0]
    assert first["index"] == 0
    assert first["id"]
    assert first["type"] == "function"
    assert first["function"]["name"] == TOOL_NAME
    assert all(c["index"] == 0 for c in calls)
    assert all("id" not in c or c["id"] == first["id"] for c in calls[1:])
    arguments = "".join(c["function"].get("arguments") or "" for c in calls)
    assert sum(1 for c in calls if c["function"].get("arguments")) >= pieces
    assert orjson.loads(arguments) == TOOL_ARGS


def test_every_harness_is_in_the_table() -> None:
    assert "openai" in HARNESSES or os.environ.get("CONFORMANCE_ONLY")
    for name, harness in HARNESSES.items():
        assert harness.name == name
        assert harness.supports, f"{name} supports no case"
        assert harness.supports <= set(CASES), f"{name}: unknown cases"
