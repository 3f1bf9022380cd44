"""``/metrics`` as Prometheus reads it: parsed with ``prometheus_client``'s own parser, in
process. Tollway's series are always there; LiteLLM's come with the ``prometheus`` callback.
The endpoint is open unless ``require_auth_for_metrics_endpoint`` puts it behind the master
key; every app has its own registry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from proxy.metrics import CallbackCollector
from proxy.observe.bus import EventBus
from proxy.observe.event import CallEvent
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, chat, new_key
from tests.providers.scripted import Canned, ScriptedTransport

MODELS = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
"""


def gateway_config(*, callbacks: str = "[]", general: str = "") -> str:
    return (
        MODELS
        + "general_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
        + general
        + f"litellm_settings:\n  callbacks: {callbacks}\n"
    )


class Scrape:
    """One parsed scrape: families by name, samples found by name and a subset of labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def type_of(self, family: str) -> str:
        return str(self.families[family].type)

    def samples(self, name: str, **labels: str) -> list[Sample]:
        family = self.families.get(_family_of(name))
        if family is None:
            return []
        return [
            s
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        found = self.samples(name, **labels)
        assert len(found) == 1, f"{name}{labels}: {found}"
        return float(found[0].value)


def _family_of(sample: str) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def test_tollway_series_are_always_on_with_prometheus_types(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, gateway_config(), transport=upstream)
    async with gateway.running() as client:
        assert (await client.post("/v1/chat/completions", json=chat(), headers=bearer())).is_success
        await gateway.state.flusher.flush()
        metrics = await scrape(client)
    deployment = gateway.state.router.deployments()[0]
    ident = {"model": "gpt-x", "deployment": "openai/gpt-x-upstream", "model_id": deployment.id}
    assert metrics.type_of("tollway_requests") == "counter"
    assert metrics.value("tollway_requests_total", status="200") == 1
    assert metrics.type_of("tollway_deployment_requests") == "counter"
    assert metrics.value("tollway_deployment_requests_total", **ident, status="200") == 1
    assert metrics.type_of("tollway_deployment_in_flight") == "gauge"
    assert metrics.value("tollway_deployment_in_flight", **ident) == 0
    assert metrics.value("tollway_deployment_cooling", **ident) == 0
    assert metrics.value("tollway_deployment_cooldowns_total", **ident) == 0
    assert metrics.type_of("tollway_ledger_in_flight") == "gauge"
    assert metrics.value("tollway_ledger_in_flight") == 0
    assert metrics.value("tollway_ledger_reserved_usd") == 0
    assert metrics.type_of("tollway_flush_flushed") == "counter"
    assert metrics.value("tollway_flush_flushed_total") == 1
    assert metrics.type_of("tollway_flush_queued") == "gauge"
    assert metrics.value("tollway_flush_queued") == 0
    assert metrics.type_of("tollway_callback_dropped") == "counter"
    # Without the prometheus callback there is no per-call work and no LiteLLM series.
    assert gateway.state.prometheus is None
    assert not [name for name in metrics.families if name.startswith("litellm_")]


async def test_metrics_are_open_by_default(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, gateway_config())
    async with gateway.running() as client:
        response = await client.get("/metrics")
        slash = await client.get("/metrics/")
    assert response.status_code == 200
    assert slash.status_code == 200
    assert "tollway_ledger_in_flight" in slash.text


async def test_metrics_need_the_master_key_when_configured(tmp_path: Path) -> None:
    general = "  require_auth_for_metrics_endpoint: true\n"
    gateway = await InProcessGateway.build(tmp_path, gateway_config(general=general))
    async with gateway.running() as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers=bearer("sk-not-a-key"))
        virtual = await client.get("/metrics", headers=bearer(await new_key(client)))
        master = await client.get("/metrics", headers=bearer())
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert virtual.status_code == 403
    assert "tollway_" not in virtual.text
    assert master.status_code == 200
    assert "tollway_requests" in master.text


async def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    for name in ("one", "two"):
        await asyncio.to_thread((tmp_path / name).mkdir)
    one = await InProcessGateway.build(
        tmp_path / "one",
        gateway_config(callbacks="[prometheus]"),
        transport=ScriptedTransport(Canned.json(COMPLETION)),
    )
    two = await InProcessGateway.build(tmp_path / "two", gateway_config(callbacks="[prometheus]"))
    async with one.running() as first, two.running() as second:
        assert (await first.post("/v1/chat/completions", json=chat(), headers=bearer())).is_success
        seen = await scrape(first)
        other = await scrape(second)
    assert seen.value("litellm_proxy_total_requests_metric_total", status_code="200") == 1
    assert other.samples("litellm_proxy_total_requests_metric_total") == []
    assert other.samples("tollway_requests_total") == []
    # The default registry's process collector reads /proc: off the loop.
    exposed = await asyncio.to_thread(prometheus_client.generate_latest, prometheus_client.REGISTRY)
    default = exposed.decode()
    assert "litellm_" not in default
    assert "tollway_" not in default


class _IdleSink:
    name = "idle"
    max_batch = 10
    flush_interval_s = 1.0

    async def send(self, batch: Any) -> None:
        raise AssertionError("never started")

    async def close(self) -> None:
        return None


def _event(n: int) -> CallEvent:
    return CallEvent(
        call_id=f"c{n}", request_id=f"r{n}", start_time=0.0, end_time=1.0, route="openai", kind=""
    )


@pytest.mark.parametrize(
    ("published", "depth", "dropped"),
    [pytest.param(1, 1, 0, id="room"), pytest.param(5, 2, 3, id="full")],
)
def test_callback_queue_depth_and_drops_are_reported_per_sink(
    published: int, depth: int, dropped: int
) -> None:
    bus = EventBus([_IdleSink()], queue_size=2)
    for n in range(published):
        bus.publish(_event(n))
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(CallbackCollector(bus))
    metrics = Scrape(prometheus_client.generate_latest(registry).decode())
    assert metrics.type_of("tollway_callback_queue_depth") == "gauge"
    assert metrics.value("tollway_callback_queue_depth", sink="idle") == depth
    assert metrics.type_of("tollway_callback_dropped") == "counter"
    assert metrics.value("tollway_callback_dropped_total", sink="idle") == dropped
    assert metrics.value("tollway_callback_delivered_total", sink="idle") == 0
