"""The generic webhook sink against fake receivers: each body format, a failing one, a stuck one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.config import ConfigError
from proxy.observe.bus import EventBus
from proxy.observe.event import CallEvent
from proxy.observe.sinks.webhook import (
    WebhookSink,
    build,
    parse_headers,
    standard_logging_payload,
)
from proxy.upstream.aiohttp_transport import AiohttpTransport
from proxy.upstream.transport import Deadlines
from tests.inprocess import InProcessGateway, bearer

TOKEN = "Bearer sink-secret-4242"


class Receiver:
    """Records every POST; answers ``status``, or holds each request until released."""

    def __init__(self, *, status: int = 200, hang: bool = False) -> None:
        self.status = status
        self.hang = hang
        self.requests: list[tuple[Mapping[str, str], bytes]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_ids: set[str] = set()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/logs", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/logs"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.headers.copy(), body))
        if self.hang:
            self.entered.set()
            await self.release.wait()
        if self.fail_ids and orjson.loads(body).get("id") in self.fail_ids:
            self.fail_ids.clear()  # fails once
            return web.Response(status=503)
        return web.Response(status=self.status, text="ok")

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for headers, body in self.requests:
            kind = headers.get("Content-Type", "")
            if kind == "application/x-ndjson":
                out += [orjson.loads(line) for line in body.splitlines() if line]
            else:
                parsed = orjson.loads(body)
                out += parsed if isinstance(parsed, list) else [parsed]
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def _event(call_id: str, **fields: Any) -> CallEvent:
    now = time.time()
    return CallEvent(
        call_id=call_id,
        request_id=f"req-{call_id}",
        start_time=now - 0.5,
        end_time=now,
        route="openai",
        kind="chat/completions",
        model_group="gpt-test",
        deployment="openai/gpt-4o",
        provider="openai",
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.25,
        **fields,
    )


async def _deliver(sink: WebhookSink, events: list[CallEvent], retries: int = 3) -> EventBus:
    bus = EventBus([sink], retries=retries)
    bus.start()
    for event in events:
        bus.publish(event)
    await bus.stop()
    return bus


@pytest.mark.parametrize(
    ("log_format", "posts", "content_type"),
    [
        pytest.param("json_array", 1, "application/json", id="json_array"),
        pytest.param("ndjson", 1, "application/x-ndjson", id="ndjson"),
        pytest.param("single", 3, "application/json", id="single"),
    ],
)
async def test_each_log_format_delivers_every_call_with_the_configured_headers(
    receiver: Receiver, log_format: str, posts: int, content_type: str
) -> None:
    transport = AiohttpTransport()
    environ = {
        "GENERIC_LOGGER_ENDPOINT": receiver.url,
        "GENERIC_LOGGER_HEADERS": f"Authorization={TOKEN},X-Team=blue",
        "GENERIC_LOGGER_LOG_FORMAT": log_format,
    }
    sink = build(environ, transport, {})
    try:
        bus = await _deliver(sink, [_event(f"c{i}") for i in range(3)])
    finally:
        await transport.close()
    assert len(receiver.requests) == posts
    for headers, _ in receiver.requests:
        assert headers["Content-Type"] == content_type
        assert headers["Authorization"] == TOKEN
        assert headers["X-Team"] == "blue"
    records = receiver.records()
    assert sorted(r["id"] for r in records) == ["c0", "c1", "c2"]
    assert all(r["status"] == "success" and r["total_tokens"] == 15 for r in records)
    assert bus.stats["generic_api"].delivered == 3


async def test_a_receiver_answering_500_is_retried_then_the_batch_is_dropped_and_counted() -> None:
    server = Receiver(status=500)
    await server.start()
    transport = AiohttpTransport()
    try:
        sink = WebhookSink(transport, server.url)
        bus = await _deliver(sink, [_event("a"), _event("b")], retries=2)
    finally:
        await transport.close()
        await server.stop()
    assert len(server.requests) == 3  # the first try and two retries
    stats = bus.stats["generic_api"]
    assert stats.dropped == 2
    assert stats.failed_batches == 1
    assert stats.delivered == 0


async def test_single_format_retries_only_the_calls_not_yet_accepted(receiver: Receiver) -> None:
    receiver.fail_ids = {"b"}
    transport = AiohttpTransport()
    try:
        sink = WebhookSink(transport, receiver.url, log_format="single")
        bus = await _deliver(sink, [_event("a"), _event("b"), _event("c")])
    finally:
        await transport.close()
    ids = [r["id"] for r in receiver.records()]
    assert sorted(ids) == ["a", "b", "b", "c"]  # "b" twice: refused once, then accepted
    assert bus.stats["generic_api"].delivered == 3


async def test_a_stuck_receiver_times_out_and_the_batch_is_dropped() -> None:
    server = Receiver(hang=True)
    await server.start()
    transport = AiohttpTransport()
    try:
        deadlines = Deadlines(connect=1.0, read=0.2, total=0.3)
        sink = WebhookSink(transport, server.url, deadlines=deadlines)
        bus = await _deliver(sink, [_event("a")], retries=0)
    finally:
        await transport.close()
        await server.stop()
    assert bus.stats["generic_api"].dropped == 1


async def test_a_stuck_receiver_never_slows_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Receiver(hang=True)
    await server.start()
    monkeypatch.setenv("GENERIC_LOGGER_ENDPOINT", server.url)
    config = """\
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: mock/mock-gpt
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
litellm_settings:
  success_callback: ["generic_api"]
"""
    gateway = await InProcessGateway.build(tmp_path, config, transport=None)
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    latencies: list[float] = []
    try:
        async with gateway.running() as client:
            first = await client.post("/v1/chat/completions", headers=bearer(), json=body)
            assert first.status_code == 200
            # The sink's first batch is now on its way to a receiver that never answers.
            await asyncio.wait_for(server.entered.wait(), timeout=5)
            for _ in range(20):
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", headers=bearer(), json=body)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
            assert len(server.requests) == 1  # still stuck on the first batch
            server.release.set()
    finally:
        await server.stop()
    assert max(latencies) < 0.5, latencies
    assert sorted(latencies)[len(latencies) // 2] < 0.1, latencies


def test_headers_are_read_as_key_value_pairs_or_json() -> None:
    assert parse_headers("Authorization=Bearer a=b, X-Env = prod") == {
        "Authorization": "Bearer a=b",
        "X-Env": "prod",
    }
    assert parse_headers('{"Authorization": "Bearer x", "X-N": 3}') == {
        "Authorization": "Bearer x",
        "X-N": "3",
    }
    assert parse_headers(None) == {}
    with pytest.raises(ConfigError):
        parse_headers("{not json")


def test_the_endpoint_is_required_and_the_format_must_be_known() -> None:
    with pytest.raises(ConfigError, match="GENERIC_LOGGER_ENDPOINT"):
        build({}, AiohttpTransport(), {})
    with pytest.raises(ConfigError, match="log_format"):
        build(
            {"GENERIC_LOGGER_ENDPOINT": "http://127.0.0.1:9/x", "GENERIC_LOGGER_LOG_FORMAT": "xml"},
            AiohttpTransport(),
            {},
        )


def test_a_failed_call_carries_litellm_error_information() -> None:
    event = _event(
        "e",
        status="error",
        status_code=502,
        error_type="upstream_unreachable",
        error_message="cannot connect",
        key_alias="team-key",
        end_user="u-1",
        metadata={"session": "s"},
    )
    record = standard_logging_payload(event)
    assert record["status"] == "failure"
    assert record["error_str"] == "cannot connect"
    assert record["error_information"]["error_code"] == "502"
    assert record["error_information"]["error_class"] == "upstream_unreachable"
    assert record["call_type"] == "acompletion"
    assert record["model"] == "gpt-4o"
    assert record["metadata"]["user_api_key_alias"] == "team-key"
    assert record["metadata"]["requester_metadata"] == {"session": "s"}
    assert record["end_user"] == "u-1"
    assert record["response_cost"] == 0.25
