"""The ``otel`` callback against a fake OTLP/HTTP receiver: spans, parents, W3C propagation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.observe.event import AttemptEvent, CallEvent
from proxy.observe.sinks.otel import build, traces_endpoint
from proxy.upstream.aiohttp_transport import AiohttpTransport
from tests.conftest import MASTER_KEY, UPSTREAM_KEY, chat_body, free_port, gateway_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.threaded import ThreadedApp
from tests.inprocess import InProcessGateway, bearer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class FakeCollector(ThreadedApp):
    """An OTLP/HTTP receiver: ``POST /v1/traces`` with a protobuf body, decoded and kept."""

    thread_name = "fake-otlp"

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[tuple[dict[str, str], bytes]] = []
        self.unavailable = 0  # answer this many requests with 503 first
        self.refused = 0

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.unavailable:
            self.unavailable -= 1
            self.refused += 1
            return web.Response(status=503)
        self.exports.append((dict(request.headers), raw))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for _headers, raw in self.exports:
            request = ExportTraceServiceRequest.FromString(raw)
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend(_span(span, resource) for span in scope_spans.spans)
        return out


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def _span(span: Span, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "attributes": _attributes(span.attributes),
        "status": span.status.code,
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "resource": resource,
    }


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    server = FakeCollector()
    server.start_thread()
    yield server
    server.stop()


def otel_config(upstream: FakeOpenAI, extra: str = "") -> str:
    return (
        gateway_config(upstream, free_port())
        + "router_settings:\n  num_retries: 0\n  fallbacks: [{upstream-500: [fake-ok]}]\n"
        + "litellm_settings:\n  callbacks: [otel]\n"
        + extra
    )


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch, collector: FakeCollector) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
    monkeypatch.setenv("OTEL_HEADERS", "x-collector-token=tok%2C123,x-tenant=acme")
    # Batches leave after 20 ms instead of a second: the tests wait on delivery at stop.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    for name in ("OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER"):
        monkeypatch.delenv(name, raising=False)


def children_of(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spans if s["parent"] == parent["span_id"]]


def call_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if "tollway.call_id" in s["attributes"]]


@pytest.mark.usefixtures("otel_env")
async def test_incoming_traceparent_is_continued_and_sent_upstream(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    incoming = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with gateway.running() as client:
        resp = await client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={**bearer(), "traceparent": incoming, "tracestate": "vendor=abc"},
        )
        assert resp.status_code == 200
        upstream_headers = fake_openai.last_request()["headers"]
    # Stopping the gateway delivers what is queued.
    spans = collector.spans()
    (call,) = call_spans(spans)
    assert call["name"] == "chat gpt-test"
    assert call["kind"] == Span.SpanKind.SPAN_KIND_CLIENT
    assert call["trace_id"] == TRACE_ID
    assert call["parent"] == PARENT_ID
    assert call["trace_state"] == "vendor=abc"
    assert call["resource"]["service.name"] == "gateway-under-test"
    attributes = call["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "fake-ok"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["tollway.cost"] >= 0
    assert attributes["tollway.cache_hit"] is False
    assert attributes["tollway.retries"] == 0
    assert attributes["tollway.fallbacks"] == 0
    assert "tollway.overhead_ms" in attributes
    assert "error.type" not in attributes
    (attempt,) = children_of(spans, call)
    assert attempt["trace_id"] == TRACE_ID
    assert attempt["name"] == "chat fake-ok"
    assert attempt["attributes"]["tollway.deployment"] == "openai/fake-ok"
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert call["start"] <= attempt["start"] <= attempt["end"] <= call["end"]
    # The upstream is told the trace, with the attempt's span as its parent.
    version, trace_id, parent_id, flags = upstream_headers["traceparent"].split("-")
    assert (version, trace_id, parent_id, flags) == ("00", TRACE_ID, attempt["span_id"], "01")
    assert upstream_headers["tracestate"] == "vendor=abc"
    headers, _raw = collector.exports[0]
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["x-collector-token"] == "tok,123"
    assert headers["x-tenant"] == "acme"


@pytest.mark.usefixtures("otel_env")
async def test_a_call_without_traceparent_starts_a_trace_the_upstream_joins(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        for header in ({}, {"traceparent": "00-not-a-trace-01"}):
            resp = await client.post(
                "/v1/embeddings",
                json={"model": "embed-test", "input": "hello"},
                headers={**bearer(), **header},
            )
            assert resp.status_code == 200
            _version, trace_id, parent_id, _flags = fake_openai.last_request()["headers"][
                "traceparent"
            ].split("-")
            assert trace_id != TRACE_ID and int(trace_id, 16) != 0
    spans = collector.spans()
    calls = call_spans(spans)
    assert len(calls) == 2
    for call in calls:
        assert call["name"] == "embeddings embed-test"
        assert call["attributes"]["gen_ai.operation.name"] == "embeddings"
        assert call["parent"] == ""  # a root span: the malformed header was ignored
        (attempt,) = children_of(spans, call)
        assert attempt["trace_id"] == call["trace_id"]
    assert parent_id == children_of(spans, calls[1])[0]["span_id"]


@pytest.mark.usefixtures("otel_env")
async def test_a_fallback_gives_one_child_span_per_attempt(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("upstream-500"), headers=bearer()
        )
        assert resp.status_code == 200
    spans = collector.spans()
    (call,) = call_spans(spans)
    assert call["name"] == "chat upstream-500"
    assert call["attributes"]["tollway.fallbacks"] == 1
    assert call["status"] == Status.StatusCode.STATUS_CODE_UNSET
    failed, served = sorted(children_of(spans, call), key=lambda s: s["start"])
    assert failed["attributes"]["tollway.deployment"] == "openai/fake-500"
    assert failed["attributes"]["http.response.status_code"] == 500
    assert failed["attributes"]["error.type"]
    assert failed["status"] == Status.StatusCode.STATUS_CODE_ERROR
    assert served["attributes"]["tollway.deployment"] == "openai/fake-ok"
    assert served["attributes"]["tollway.attempt"] == 2
    assert failed["end"] <= served["start"]


@pytest.mark.usefixtures("otel_env")
async def test_a_failed_call_span_has_error_type_and_error_status(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("bad-request"), headers=bearer()
        )
        assert resp.status_code == 400
    (call,) = call_spans(collector.spans())
    assert call["status"] == Status.StatusCode.STATUS_CODE_ERROR
    assert call["attributes"]["error.type"] == "invalid_request_error"
    assert call["attributes"]["http.response.status_code"] == 400


@pytest.mark.usefixtures("otel_env")
async def test_a_stream_attempt_span_lasts_until_the_stream_ends(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        body = chat_body(stream=True, stream_options={"include_usage": True})
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=bearer()
        ) as resp:
            assert resp.status_code == 200
            assert b"[DONE]" in await resp.aread()
    spans = collector.spans()
    (call,) = call_spans(spans)
    assert call["attributes"]["tollway.stream"] is True
    assert call["attributes"]["gen_ai.usage.output_tokens"] > 0
    (attempt,) = children_of(spans, call)
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert attempt["end"] <= call["end"]


@pytest.mark.usefixtures("otel_env")
async def test_span_names_the_key_alias_and_team_but_never_the_key(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        team = await client.post("/team/new", json={"team_alias": "ml"}, headers=bearer())
        team_id = team.json()["team_id"]
        made = await client.post(
            "/key/generate", json={"key_alias": "ci-bot", "team_id": team_id}, headers=bearer()
        )
        key = made.json()["key"]
        resp = await client.post("/v1/chat/completions", json=chat_body(), headers=bearer(key))
        assert resp.status_code == 200
    (call,) = call_spans(collector.spans())
    assert call["attributes"]["tollway.key_alias"] == "ci-bot"
    assert call["attributes"]["tollway.team_id"] == team_id
    for _headers, raw in collector.exports:
        for secret in (key, MASTER_KEY, UPSTREAM_KEY):
            assert secret.encode() not in raw


@pytest.mark.usefixtures("otel_env")
async def test_an_unsampled_parent_is_propagated_but_not_exported(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: FakeCollector
) -> None:
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        resp = await client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={**bearer(), "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"},
        )
        assert resp.status_code == 200
        sent = fake_openai.last_request()["headers"]["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-") and sent.endswith("-00")
    assert collector.exports == []


async def test_without_otel_nothing_is_recorded_or_sent_upstream(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    gateway = await InProcessGateway.build(tmp_path, gateway_config(fake_openai, free_port()))
    assert gateway.state.dispatch.trace is False
    async with gateway.running() as client:
        resp = await client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={**bearer(), "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        )
        assert resp.status_code == 200
        assert "traceparent" not in fake_openai.last_request()["headers"]


async def test_a_receiver_that_is_down_never_fails_or_slows_a_request(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    gateway = await InProcessGateway.build(tmp_path, otel_config(fake_openai))
    async with gateway.running() as client:
        for _ in range(5):
            started = time.perf_counter()
            resp = await client.post("/v1/chat/completions", json=chat_body(), headers=bearer())
            assert resp.status_code == 200
            assert time.perf_counter() - started < 1.0
        stats = gateway.state.events.stats["otel"]
    assert stats.delivered == 0


async def test_the_sink_exports_an_event_with_its_own_start_and_end_times(
    collector: FakeCollector,
) -> None:
    environ = {"OTEL_ENDPOINT": collector.url + "/v1/traces"}
    transport = AiohttpTransport()
    sink = build(environ, transport, {})
    event = CallEvent(
        call_id="c-1",
        request_id="r-1",
        start_time=1_700_000_000.0,
        end_time=1_700_000_002.5,
        route="openai",
        kind="completions",
        model_group="legacy",
        deployment="anthropic/claude-x",
        provider="anthropic",
        prompt_tokens=7,
        completion_tokens=3,
        trace_id=TRACE_ID,
        attempts=[
            AttemptEvent(
                deployment="anthropic/claude-x",
                start_time=1_700_000_000.5,
                end_time=1_700_000_002.0,
                status=200,
                span_id="1111111111111111",
            )
        ],
    )
    try:
        await sink.send([event])
    finally:
        await transport.close()
    call, attempt = sorted(collector.spans(), key=lambda s: s["start"])
    assert call["name"] == "text_completion legacy"
    assert call["resource"]["service.name"] == "tollway"
    assert call["attributes"]["gen_ai.provider.name"] == "anthropic"
    assert (call["start"], call["end"]) == (1_700_000_000_000_000_000, 1_700_000_002_500_000_000)
    assert attempt["span_id"] == "1111111111111111"
    assert attempt["parent"] == call["span_id"]
    assert attempt["trace_id"] == call["trace_id"] == TRACE_ID


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, "http://localhost:4318/v1/traces", id="default"),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces", id="base"
        ),
        pytest.param(
            {"OTEL_ENDPOINT": "http://c:4318/v1/traces"}, "http://c:4318/v1/traces", id="litellm"
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/custom"},
            "http://c/custom",
            id="traces-endpoint-as-is",
        ),
    ],
)
def test_endpoint_is_read_from_litellm_and_otel_variables(
    environ: dict[str, str], expected: str
) -> None:
    assert traces_endpoint(environ) == expected


async def test_spans_refused_with_503_are_sent_again(collector: FakeCollector) -> None:
    collector.unavailable = 1
    transport = AiohttpTransport()
    sink = build({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}, transport, {})
    event = CallEvent(
        call_id="c-2", request_id="r-2", start_time=1.0, end_time=2.0, route="openai", kind=""
    )
    try:
        with pytest.raises(RuntimeError, match="503"):
            await sink.send([event])  # the bus retries a batch whose send raised
        await sink.send([event])
    finally:
        await transport.close()
    assert collector.refused == 1
    (span,) = collector.spans()
    assert span["name"] == "tollway.call"
    assert "gen_ai.operation.name" not in span["attributes"]
