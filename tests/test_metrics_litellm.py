"""LiteLLM's Prometheus series (names, types, labels, values) and Tollway's per-call ones,
after known calls in process; and the cardinality rule that keeps their labels bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.auth import hash_key
from proxy.observe.prometheus import exception_class
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, STREAM, chat, new_key
from tests.providers.scripted import Canned, ScriptedTransport
from tests.test_metrics import scrape

CONFIG = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: https://user:secret@upstream.test/v1?key=also-secret
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: flaky
    litellm_params:
      model: openai/flaky-upstream
      api_base: http://flaky.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
router_settings:
  num_retries: 0
  allowed_fails: 1
  cooldown_time: 30
  model_group_alias: {"gpt-alias": "gpt-x"}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
  prometheus_end_user_allowlist: [alice]
litellm_settings:
  callbacks: [prometheus]
"""

GUARDRAILS = """\
guardrails:
  - guardrail_name: no-ssn
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
      patterns:
        - pattern_type: prebuilt
          pattern_name: us_ssn
          action: BLOCK
        - pattern_type: prebuilt
          pattern_name: email
          action: MASK
"""

SPEND = 10 * 0.000001 + 2 * 0.000002
UPSTREAM_500 = Canned.json({"error": {"message": "boom", "type": "server_error"}}, status=500)


def deployment_id(gateway: InProcessGateway, group: str) -> str:
    return next(d.id for d in gateway.state.router.deployments() if d.model_name == group)


async def test_a_call_is_counted_with_litellms_names_types_and_labels(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG, transport=ScriptedTransport(Canned.json(COMPLETION))
    )
    async with gateway.running() as client:
        team = await client.post(
            "/team/new", json={"team_alias": "blue", "max_budget": 10.0}, headers=bearer()
        )
        team_id = team.json()["team_id"]
        key = await new_key(client, key_alias="ci", team_id=team_id, max_budget=1.0)
        reply = await client.post(
            "/v1/chat/completions", json=chat(user="alice"), headers=bearer(key)
        )
        assert reply.status_code == 200, reply.text
        metrics = await scrape(client)
    model_id = deployment_id(gateway, "gpt-x")
    who = {
        "end_user": "alice",
        "hashed_api_key": hash_key(key),
        "api_key_alias": "ci",
        "team": team_id,
        "team_alias": "blue",
        "user": "",
        "model_id": model_id,
    }
    called = {**who, "model": "gpt-x-upstream"}
    for family in (
        "litellm_requests_metric",
        "litellm_spend_metric",
        "litellm_total_tokens_metric",
        "litellm_input_tokens_metric",
        "litellm_output_tokens_metric",
        "litellm_proxy_total_requests_metric",
        "litellm_proxy_failed_requests_metric",
    ):
        assert metrics.type_of(family) == "counter", family
    for family in (
        "litellm_request_total_latency_metric",
        "litellm_llm_api_latency_metric",
        "litellm_llm_api_time_to_first_token_metric",
        "tollway_gateway_overhead_seconds",
    ):
        assert metrics.type_of(family) == "histogram", family
    assert metrics.value("litellm_requests_metric_total", **called) == 1
    assert metrics.value("litellm_spend_metric_total", **called) == pytest.approx(SPEND)
    tokens = {**called, "requested_model": "gpt-x"}
    assert metrics.value("litellm_input_tokens_metric_total", **tokens) == 10
    assert metrics.value("litellm_output_tokens_metric_total", **tokens) == 2
    assert metrics.value("litellm_total_tokens_metric_total", **tokens) == 12
    total = {**who, "requested_model": "gpt-x", "status_code": "200"}
    assert metrics.value("litellm_proxy_total_requests_metric_total", **total) == 1
    assert metrics.samples("litellm_proxy_failed_requests_metric_total") == []
    assert metrics.value("litellm_request_total_latency_metric_count", **tokens) == 1
    assert metrics.value("litellm_llm_api_latency_metric_count", **tokens) == 1
    assert metrics.value("tollway_gateway_overhead_seconds_count") == 1
    # Time to first token is a streaming measure; this call was not streamed.
    assert metrics.samples("litellm_llm_api_time_to_first_token_metric_count") == []
    budget_key = {"hashed_api_key": hash_key(key), "api_key_alias": "ci"}
    assert metrics.type_of("litellm_remaining_api_key_budget_metric") == "gauge"
    assert metrics.value("litellm_remaining_api_key_budget_metric", **budget_key) == (
        pytest.approx(1.0 - SPEND)
    )
    assert metrics.value("litellm_api_key_max_budget_metric", **budget_key) == 1.0
    assert metrics.type_of("litellm_remaining_team_budget_metric") == "gauge"
    assert metrics.value(
        "litellm_remaining_team_budget_metric", team=team_id, team_alias="blue"
    ) == pytest.approx(10.0 - SPEND)
    deployment = {
        "litellm_model_name": "openai/gpt-x-upstream",
        "model_id": model_id,
        "api_base": "https://upstream.test/v1",
        "api_provider": "openai",
    }
    assert metrics.type_of("litellm_deployment_state") == "gauge"
    assert metrics.value("litellm_deployment_state", **deployment) == 0
    assert metrics.type_of("litellm_deployment_success_responses") == "counter"
    success = {**deployment, "requested_model": "gpt-x"}
    assert metrics.value("litellm_deployment_success_responses_total", **success) == 1
    assert metrics.value("litellm_deployment_total_requests_total", **success) == 1
    assert metrics.value("litellm_deployment_cooled_down_total", **deployment) == 0
    assert "secret" not in metrics.text


async def test_failures_cooldowns_and_deployment_state(tmp_path: Path) -> None:
    upstream = ScriptedTransport(UPSTREAM_500, UPSTREAM_500)
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        statuses = [
            (await client.post("/v1/chat/completions", json=chat(model="flaky"), headers=bearer()))
            for _ in range(3)
        ]
        metrics = await scrape(client)
        gateway.clock.advance(31)  # the cooldown is over and the failures are a minute old
        later = await scrape(client)
    assert [r.status_code for r in statuses] == [502, 502, 503]
    model_id = deployment_id(gateway, "flaky")
    failed = {"requested_model": "flaky", "exception_status": "502"}
    assert (
        metrics.value(
            "litellm_proxy_failed_requests_metric_total",
            **failed,
            exception_class="Openai.InternalServerError",
            model_id=model_id,
        )
        == 2
    )
    assert (
        metrics.value(
            "litellm_proxy_failed_requests_metric_total",
            requested_model="flaky",
            exception_status="503",
            exception_class="ServiceUnavailableError",
        )
        == 1
    )
    assert (
        metrics.value(
            "litellm_proxy_total_requests_metric_total", requested_model="flaky", status_code="502"
        )
        == 2
    )
    assert metrics.samples("litellm_requests_metric_total") == []
    deployment = {"litellm_model_name": "openai/flaky-upstream", "model_id": model_id}
    assert metrics.value("litellm_deployment_state", **deployment) == 2  # cooling down
    assert metrics.value("litellm_deployment_cooled_down_total", **deployment) == 1
    assert (
        metrics.value(
            "litellm_deployment_failure_responses_total",
            **deployment,
            requested_model="flaky",
            exception_status="502",
            exception_class=exception_class(502, "openai"),
        )
        == 2
    )
    assert metrics.value("litellm_deployment_success_responses_total", **deployment) == 0
    assert later.value("litellm_deployment_state", **deployment) == 0


async def test_a_recent_failure_is_a_partial_outage(tmp_path: Path) -> None:
    upstream = ScriptedTransport(UPSTREAM_500)
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        await client.post("/v1/chat/completions", json=chat(model="flaky"), headers=bearer())
        metrics = await scrape(client)
    state = metrics.value("litellm_deployment_state", litellm_model_name="openai/flaky-upstream")
    assert state == 1


async def test_rate_limit_and_budget_rejections_are_counted_by_reason(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        limited = await new_key(client, rpm_limit=1)
        poor = await new_key(client, max_budget=0.000000001)
        first = await client.post("/v1/chat/completions", json=chat(), headers=bearer(limited))
        second = await client.post("/v1/chat/completions", json=chat(), headers=bearer(limited))
        broke = await client.post("/v1/chat/completions", json=chat(), headers=bearer(poor))
        metrics = await scrape(client)
    assert (first.status_code, second.status_code, broke.status_code) == (200, 429, 429)
    assert metrics.type_of("tollway_limit_rejections") == "counter"
    assert metrics.value("tollway_limit_rejections_total", reason="rpm", account="key") == 1
    assert metrics.value("tollway_limit_rejections_total", reason="budget", account="key") == 1
    assert (
        metrics.value(
            "litellm_proxy_failed_requests_metric_total",
            hashed_api_key=hash_key(poor),
            exception_status="429",
            exception_class="BudgetExceededError",
        )
        == 1
    )
    assert (
        metrics.value(
            "litellm_proxy_failed_requests_metric_total",
            hashed_api_key=hash_key(limited),
            exception_class="RateLimitError",
        )
        == 1
    )


async def test_guardrail_verdicts_are_counted_by_action(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG + GUARDRAILS, transport=upstream)
    async with gateway.running() as client:
        masked = await client.post(
            "/v1/chat/completions", json=chat("mail jane.doe@example.com"), headers=bearer()
        )
        blocked = await client.post(
            "/v1/chat/completions", json=chat("ssn 123-45-6789"), headers=bearer()
        )
        metrics = await scrape(client)
    assert (masked.status_code, blocked.status_code) == (200, 400)
    assert metrics.type_of("tollway_guardrail_verdicts") == "counter"
    verdicts = {
        (s.labels["guardrail"], s.labels["action"]): s.value
        for s in metrics.samples("tollway_guardrail_verdicts_total")
    }
    assert verdicts[("no-ssn", "modify")] == 1
    assert verdicts[("no-ssn", "block")] == 1


async def test_a_stream_records_time_to_first_token(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=64))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        reply = await client.post("/v1/chat/completions", json=chat(stream=True), headers=bearer())
        assert reply.status_code == 200
        metrics = await scrape(client)
    assert (
        metrics.value("litellm_llm_api_time_to_first_token_metric_count", model="gpt-x-upstream")
        == 1
    )
    assert metrics.value("litellm_requests_metric_total", model="gpt-x-upstream") == 1


async def test_labels_stay_bounded_whatever_clients_send(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(12)])
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        for n in range(10):
            body = chat(user=f"visitor-{n}")
            headers = {**bearer(), "x-request-id": f"req-{n}"}
            assert (
                await client.post("/v1/chat/completions", json=body, headers=headers)
            ).is_success
        await client.post("/v1/chat/completions", json=chat(user="alice"), headers=bearer())
        aliased = await client.post(
            "/v1/chat/completions", json=chat(model="gpt-alias"), headers=bearer()
        )
        unknown = await client.post(
            "/v1/chat/completions", json=chat(model="made-up-9f3a"), headers=bearer()
        )
        metrics = await scrape(client)
    assert aliased.status_code == 200
    assert unknown.status_code == 404
    totals = metrics.samples("litellm_proxy_total_requests_metric_total")
    assert {s.labels["end_user"] for s in totals} == {"alice", "other", ""}
    assert {s.labels["requested_model"] for s in totals} == {"gpt-x", "gpt-alias", "other"}
    assert sum(s.value for s in totals) == 13
    # the visitors as one "other", alice, and the two calls that sent no user
    assert len(totals) == 4
    values = {
        v for family in metrics.families.values() for s in family.samples for v in s.labels.values()
    }
    assert not any(v.startswith(("req-", "visitor-")) or "made-up" in v for v in values)


def test_exception_class_names_follow_litellm() -> None:
    assert exception_class(429, "openai") == "Openai.RateLimitError"
    assert exception_class(401) == "AuthenticationError"
    assert exception_class(529) == "APIError"
