"""The Langfuse sink against a fake Langfuse that checks the ingestion schema and Basic auth."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.config import ConfigError
from proxy.observe.bus import EventBus
from proxy.observe.event import CallEvent
from proxy.observe.sinks.langfuse import LangfuseSink, build, ingestion_events
from proxy.upstream.aiohttp_transport import AiohttpTransport
from tests.conftest import free_port
from tests.inprocess import InProcessGateway, bearer

PUBLIC = "pk-lf-test-public"
SECRET = "sk-lf-test-secret-0123456789"

_ISO = "iso"
_TRACE_FIELDS: dict[str, Any] = {
    "id": str,
    "timestamp": _ISO,
    "name": str,
    "userId": str,
    "sessionId": str,
    "input": object,
    "output": object,
    "metadata": dict,
    "tags": list,
    "version": str,
    "release": str,
    "public": bool,
    "environment": str,
}
_GENERATION_FIELDS: dict[str, Any] = {
    "id": str,
    "traceId": str,
    "name": str,
    "startTime": _ISO,
    "endTime": _ISO,
    "completionStartTime": _ISO,
    "model": str,
    "modelParameters": dict,
    "input": object,
    "output": object,
    "usage": dict,
    "usageDetails": dict,
    "costDetails": dict,
    "metadata": dict,
    "level": str,
    "statusMessage": str,
    "parentObservationId": str,
    "version": str,
    "promptName": str,
    "promptVersion": int,
    "environment": str,
}
_USAGE_FIELDS = {"input", "output", "total", "unit", "inputCost", "outputCost", "totalCost"}


def _schema_errors(event: Any) -> list[str]:
    """What Langfuse's ingestion schema would reject in one batch event."""
    if not isinstance(event, dict) or set(event) - {"id", "timestamp", "type", "body", "metadata"}:
        return ["an event has exactly id, timestamp, type, body (and optional metadata)"]
    problems = []
    if not isinstance(event.get("id"), str) or not _is_iso(event.get("timestamp")):
        problems.append("event id must be a string and timestamp ISO 8601")
    fields = {"trace-create": _TRACE_FIELDS, "generation-create": _GENERATION_FIELDS}.get(
        event.get("type")  # type: ignore[arg-type]
    )
    body = event.get("body")
    if fields is None or not isinstance(body, dict):
        return [*problems, f"unknown type {event.get('type')!r} or body not an object"]
    for key, value in body.items():
        kind = fields.get(key)
        if kind is None:
            problems.append(f"unknown body field {key}")
        elif kind == _ISO:
            if not _is_iso(value):
                problems.append(f"{key} is not ISO 8601")
        elif not isinstance(value, kind):
            problems.append(f"{key} has the wrong type")
    if "id" not in body:
        problems.append("body.id is required")
    usage = body.get("usage")
    units = (None, "TOKENS", "CHARACTERS")
    if isinstance(usage, dict) and (set(usage) - _USAGE_FIELDS or usage.get("unit") not in units):
        problems.append("usage has unknown fields or unit")
    for key in ("usageDetails", "costDetails"):
        details = body.get(key)
        if isinstance(details, dict) and not all(
            isinstance(v, int | float) for v in details.values()
        ):
            problems.append(f"{key} values must be numbers")
    if body.get("level") not in (None, "DEBUG", "DEFAULT", "WARNING", "ERROR"):
        problems.append("level is not an ObservationLevel")
    return problems


def _is_iso(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class FakeLangfuse:
    """``POST /api/public/ingestion``: Basic auth checked, every event validated, 207."""

    def __init__(self, *, reject_types: frozenset[str] = frozenset()) -> None:
        self.events: list[dict[str, Any]] = []
        self.schema_errors: list[str] = []
        self.unauthorized = 0
        self.batches = 0
        self.reject_types = reject_types
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/public/ingestion", self._ingest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ingest(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self.unauthorized += 1
            return web.json_response({"message": "Invalid credentials"}, status=401)
        payload = orjson.loads(await request.read())
        assert set(payload) <= {"batch", "metadata"}
        self.batches += 1
        successes, errors = [], []
        for event in payload["batch"]:
            problems = _schema_errors(event)
            self.schema_errors += problems
            event_id = event.get("id", "") if isinstance(event, dict) else ""
            if problems or event.get("type") in self.reject_types:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data"})
            else:
                self.events.append(event)
                successes.append({"id": event_id, "status": 201})
        return web.json_response({"successes": successes, "errors": errors}, status=207)

    def bodies(self, kind: str) -> list[dict[str, Any]]:
        return [e["body"] for e in self.events if e["type"] == kind]


@pytest.fixture
async def langfuse() -> AsyncIterator[FakeLangfuse]:
    server = FakeLangfuse()
    await server.start()
    yield server
    await server.stop()


def _config(dead_port: int) -> str:
    return f"""\
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: mock/mock-gpt
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: down
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:{dead_port}/v1
      api_key: sk-upstream-not-used
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
litellm_settings:
  success_callback: ["langfuse"]
  failure_callback: ["langfuse"]
"""


def _env(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", host)


def _event(**fields: Any) -> CallEvent:
    now = time.time()
    base: dict[str, Any] = {
        "call_id": "call-1",
        "request_id": "req-1",
        "start_time": now - 1,
        "end_time": now,
        "route": "openai",
        "kind": "chat/completions",
        "model_group": "gpt-test",
        "deployment": "openai/gpt-4o",
        "provider": "openai",
    }
    return CallEvent(**{**base, **fields})


async def test_a_call_becomes_a_trace_and_a_generation_with_usage_cost_and_latency(
    tmp_path: Path, langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, langfuse.base_url)
    gateway = await InProcessGateway.build(tmp_path, _config(free_port()), transport=None)
    metadata = {
        "session_id": "sess-42",
        "trace_user_id": "user-7",
        "trace_name": "support-bot",
        "generation_name": "answer",
        "generation_id": "gen-abc",
        "tags": ["prod", "bot"],
        "team": "blue",
    }
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=bearer(),
            json={
                "model": "mock-gpt",
                "messages": [{"role": "user", "content": "hello there"}],
                "metadata": metadata,
                "user": "end-user-1",
            },
        )
        assert response.status_code == 200
        reply = response.json()["choices"][0]["message"]["content"]
    assert langfuse.schema_errors == []
    (trace,) = langfuse.bodies("trace-create")
    (generation,) = langfuse.bodies("generation-create")
    assert trace["name"] == "support-bot"
    assert trace["userId"] == "user-7"
    assert trace["sessionId"] == "sess-42"
    assert trace["tags"] == ["prod", "bot"]
    assert trace["input"] == [{"role": "user", "content": "hello there"}]
    # The reply is logged when the event carries it (``Call.response_text``).
    assert trace.get("output", {"content": reply})["content"] == reply
    assert generation["traceId"] == trace["id"]
    assert generation["id"] == "gen-abc"
    assert generation["name"] == "answer"
    assert generation["model"] == "mock-gpt"
    assert generation["level"] == "DEFAULT"
    usage = generation["usage"]
    assert usage["unit"] == "TOKENS"
    assert usage["input"] > 0 and usage["output"] > 0
    assert usage["total"] == usage["input"] + usage["output"]
    cost = usage["input"] * 0.000001 + usage["output"] * 0.000002
    assert generation["costDetails"]["total"] == pytest.approx(cost)
    assert generation["metadata"]["team"] == "blue"
    assert "session_id" not in generation["metadata"]
    start = datetime.fromisoformat(generation["startTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(generation["endTime"].replace("Z", "+00:00"))
    assert start <= end
    assert SECRET not in orjson.dumps(langfuse.events).decode()


async def test_a_streamed_call_carries_its_time_to_first_token(
    tmp_path: Path, langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, langfuse.base_url)
    gateway = await InProcessGateway.build(tmp_path, _config(free_port()), transport=None)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=bearer(),
            json={
                "model": "mock-gpt",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "count to three"}],
            },
        )
        assert response.status_code == 200
    assert langfuse.schema_errors == []
    (generation,) = langfuse.bodies("generation-create")
    first = datetime.fromisoformat(generation["completionStartTime"].replace("Z", "+00:00"))
    start = datetime.fromisoformat(generation["startTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(generation["endTime"].replace("Z", "+00:00"))
    assert start <= first <= end


async def test_a_failed_call_is_an_error_generation_with_its_status_message(
    tmp_path: Path, langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, langfuse.base_url)
    gateway = await InProcessGateway.build(tmp_path, _config(free_port()), transport=None)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=bearer(),
            json={"model": "down", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code >= 500
    assert langfuse.schema_errors == []
    (generation,) = langfuse.bodies("generation-create")
    assert generation["level"] == "ERROR"
    assert "connect" in generation["statusMessage"]
    assert "output" not in generation
    assert generation["model"] == "gpt-4o"


def test_calls_sharing_a_trace_id_land_in_that_trace() -> None:
    first = ingestion_events(_event(call_id="a", metadata={"trace_id": "t-1"}))
    second = ingestion_events(_event(call_id="b", metadata={"trace_id": "t-1"}))
    for events in (first, second):
        assert [e["body"]["traceId"] for e in events if e["type"] == "generation-create"] == ["t-1"]
        assert [e["body"]["id"] for e in events if e["type"] == "trace-create"] == ["t-1"]


def test_an_existing_trace_id_is_attached_to_without_rewriting_the_trace() -> None:
    events = ingestion_events(_event(metadata={"existing_trace_id": "t-old", "trace_name": "x"}))
    assert [e["type"] for e in events] == ["generation-create"]
    assert events[0]["body"]["traceId"] == "t-old"


def test_without_metadata_the_trace_is_the_call_and_the_user_is_the_end_user() -> None:
    trace, generation = (
        e["body"] for e in ingestion_events(_event(end_user="u-9", key_alias="team-key"))
    )
    assert trace["id"] == generation["traceId"] == "call-1"
    assert trace["userId"] == "u-9"
    assert trace["name"] == "litellm-acompletion"
    assert generation["name"] == "litellm:team-key"
    assert "input" not in trace and "input" not in generation


def test_the_messages_and_the_reply_are_the_input_and_output() -> None:
    messages = [{"role": "user", "content": "hi"}]
    event = _event(messages=messages, response="hello!")
    for body in (e["body"] for e in ingestion_events(event)):
        assert body["input"] == messages
        assert body["output"] == {"role": "assistant", "content": "hello!"}


def test_masked_input_and_output_are_replaced() -> None:
    event = _event(
        messages=[{"role": "user", "content": "private"}],
        response="also private",
        metadata={"mask_input": True, "mask_output": "true"},
    )
    for body in (e["body"] for e in ingestion_events(event)):
        assert body["input"] == body["output"] == "redacted-by-litellm"
        assert "mask_input" not in body.get("metadata", {})


async def test_events_rejected_in_a_207_answer_are_counted_not_retried() -> None:
    server = FakeLangfuse(reject_types=frozenset({"trace-create"}))
    await server.start()
    transport = AiohttpTransport()
    sink = LangfuseSink(transport, public_key=PUBLIC, secret_key=SECRET, host=server.base_url)
    bus = EventBus([sink])
    try:
        bus.start()
        for i in range(3):
            bus.publish(_event(call_id=f"c{i}"))
        await bus.stop()
    finally:
        await transport.close()
        await server.stop()
    assert server.batches == 1
    assert sink.rejected == 3
    assert sink.accepted == 3
    assert bus.stats["langfuse"].delivered == 3


async def test_wrong_keys_are_refused_retried_and_then_dropped_and_counted() -> None:
    server = FakeLangfuse()
    await server.start()
    transport = AiohttpTransport()
    sink = LangfuseSink(
        transport, public_key=PUBLIC, secret_key="sk-lf-wrong", host=server.base_url
    )
    bus = EventBus([sink], retries=1)
    try:
        bus.start()
        bus.publish(_event())
        await bus.stop()
    finally:
        await transport.close()
        await server.stop()
    assert server.unauthorized == 2
    assert bus.stats["langfuse"].dropped == 1
    assert bus.stats["langfuse"].failed_batches == 1


def test_the_sink_needs_both_keys() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_PUBLIC_KEY"):
        build({"LANGFUSE_PUBLIC_KEY": PUBLIC}, AiohttpTransport(), {})


def test_langfuse_cloud_is_the_default_host() -> None:
    sink = build(
        {"LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": SECRET}, AiohttpTransport(), {}
    )
    assert sink.url == "https://cloud.langfuse.com/api/public/ingestion"
