"""Alerts: Slack and generic webhooks, against a fake webhook server on 127.0.0.1 port 0.

Most tests run the real app in process (scripted upstream, fake clock for the budget TTL);
the alerter's own entry points are called directly where a call's timing cannot be scripted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
import pytest
from aiohttp import web

from proxy.auth import hash_key
from proxy.config import ConfigError, parse_config
from proxy.directory import key_account
from proxy.errors import UpstreamTimeout
from proxy.observe.alerting.delivery import AlertDelivery
from proxy.observe.alerting.payload import Alert
from proxy.observe.alerts import AlertSettings
from proxy.observe.event import CallEvent
from proxy.upstream.aiohttp_transport import AiohttpTransport
from proxy.upstream.transport import Deadlines
from tests.inprocess import FakeClock, InProcessGateway, bearer
from tests.providers.scripted import Canned, ScriptedTransport


class FakeWebhook:
    """Counts the JSON posts it receives, per path; can fail or hold them."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, Any]] = []  # (path, content-type, body)
        self.fail_first = 0
        self.status = 200
        self.release: asyncio.Event | None = None
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append(
            (request.path, request.headers.get("content-type", ""), orjson.loads(body))
        )
        if self.release is not None:
            await self.release.wait()
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500, text="try later")
        return web.Response(status=self.status, text="ok")

    def url(self, path: str) -> str:
        return self.base + path

    def bodies(self, path: str) -> list[Any]:
        return [body for p, _, body in self.posts if p == path]


@pytest.fixture
async def webhook() -> AsyncIterator[FakeWebhook]:
    fake = FakeWebhook()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        if fake.release is not None:
            fake.release.set()
        await runner.cleanup()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


MODEL = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
router_settings:
  num_retries: 0
  cooldown_time: 30
"""


def config(webhook: FakeWebhook, **general: str) -> str:
    """Slack alerts of every type to ``/slack``; ``general`` adds general_settings lines."""
    lines = [
        MODEL + "general_settings:",
        "  master_key: os.environ/TEST_MASTER_KEY",
        '  alerting: ["slack"]',
        "  alert_to_webhook_url:",
    ]
    types = ("llm_exceptions", "llm_too_slow", "llm_requests_hanging", "budget_alerts")
    types += ("db_exceptions", "cooldown_deployment", "outage_alerts")
    lines += [f"    {name}: {webhook.url('/slack')}" for name in types]
    lines += [f"  {name}: {value}" for name, value in general.items()]
    return "\n".join(lines) + "\n"


def completion(prompt_tokens: int = 10, completion_tokens: int = 40) -> Canned:
    total = prompt_tokens + completion_tokens
    return Canned.json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x-upstream",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": total,
            },
        }
    )


CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


async def new_key(client: Any, **fields: Any) -> str:
    response = await client.post("/key/generate", json=fields, headers=bearer())
    assert response.status_code == 200, response.text
    key: str = response.json()["key"]
    return key


def event(**fields: Any) -> CallEvent:
    base: dict[str, Any] = {
        "call_id": "c1",
        "request_id": "r1",
        "start_time": 0.0,
        "end_time": 1.0,
        "route": "openai",
        "kind": "chat/completions",
        "model_group": "gpt-x",
        "deployment": "openai/gpt-x-upstream",
        "status_code": 200,
    }
    return CallEvent(**(base | fields))


# -- budgets -----------------------------------------------------------------------------------


async def test_a_budget_crossed_sends_one_alert_per_mark_not_one_per_request(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    # Each call really costs 9e-5 (10 + 40 tokens) though it reserves only ~8e-5
    # (max_tokens 1): the first reaches 90 % of 1e-4, then calls are refused.
    upstream = ScriptedTransport(*[completion() for _ in range(5)])
    gateway = await InProcessGateway.build(tmp_path, config(webhook), transport=upstream)
    async with gateway.running() as client:
        key = await new_key(client, max_budget=0.0001, key_alias="team-bot")
        statuses = []
        for _ in range(4):
            response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
            statuses.append(response.status_code)
        await until(lambda: len(webhook.posts) >= 2)
    assert statuses == [200, 429, 429, 429]
    slack = webhook.bodies("/slack")
    assert len(slack) == 2  # 85 % once, crossed once: not one per refused request
    first, crossed = (body["blocks"][0]["text"]["text"] for body in slack)
    assert "Budget threshold reached" in first and "90%" not in first and "85%" in first
    assert "team-bot" in first
    assert "Budget crossed" in crossed and "calls are being refused" in crossed
    assert all(set(body) == {"text", "blocks"} for body in slack)
    assert all(key not in orjson.dumps(body).decode() for body in slack)


async def test_budget_marks_and_soft_budget_for_keys_users_and_teams_repeat_only_after_the_ttl(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    clock = FakeClock()
    text = config(webhook, alerting_args="{budget_alert_ttl: 600}")
    gateway = await InProcessGateway.build(
        tmp_path, text, transport=ScriptedTransport(), clock=clock
    )
    async with gateway.running() as client:
        team = await client.post("/team/new", json={"max_budget": 10.0}, headers=bearer())
        team_id = team.json()["team_id"]
        user = await client.post("/user/new", json={"max_budget": 10.0}, headers=bearer())
        user_id = user.json()["user_id"]
        key = await new_key(
            client, max_budget=1.0, soft_budget=0.5, team_id=team_id, user_id=user_id
        )
        token = hash_key(key)
        state = gateway.state
        alerts = state.alerts
        assert alerts is not None
        ledger = state.ledger

        def spend(account: str, amount: float) -> None:
            ledger.set_account(account, ledger.account(account).limits, spend=amount)

        def settle(cost: float) -> None:
            alerts.on_call(event(cost=cost, key_hash=token, user_id=user_id, team_id=team_id))

        spend(key_account(token), 0.6)  # soft budget crossed
        settle(0.01)
        spend(key_account(token), 0.96)  # 85 % skipped, 95 % sent
        spend(f"team:{team_id}", 8.6)  # the team's 85 %
        settle(0.01)
        settle(0.01)  # nothing new
        spend(key_account(token), 1.0)
        settle(0.01)  # crossed
        clock.advance(601)
        settle(0.01)  # the TTL is over: every mark still reached is sent again, highest only
        await until(lambda: len(webhook.posts) >= 7)
        await asyncio.sleep(0.05)
    texts = [body["text"] for body in webhook.bodies("/slack")]
    assert len(texts) == 7, texts
    assert "Soft budget crossed" in texts[0]
    assert "95%" in texts[1] and "Key" in texts[1]
    assert "85%" in texts[2] and "Team" in texts[2]
    assert "Budget crossed" in texts[3]
    assert "Key budget crossed" in texts[4] and "Soft budget crossed" in texts[5]
    assert "85%" in texts[6] and "Team" in texts[6]


# -- calls ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("general", "alerts"),
    [
        pytest.param({"alerting_threshold": "0"}, 1, id="over-the-threshold"),
        pytest.param({}, 0, id="under-the-default-300s"),
    ],
)
async def test_slow_calls_alert_over_the_threshold_and_not_under_it(
    tmp_path: Path, webhook: FakeWebhook, general: dict[str, str], alerts: int
) -> None:
    upstream = ScriptedTransport(completion())
    gateway = await InProcessGateway.build(tmp_path, config(webhook, **general), transport=upstream)
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        assert response.status_code == 200
    # Stopping the gateway delivers what was queued.
    bodies = webhook.bodies("/slack")
    assert len(bodies) == alerts
    for body in bodies:
        assert "Slow LLM call" in body["text"]
        assert "llm_too_slow" in body["blocks"][0]["text"]["text"]


class TimingOut:
    """An upstream that never answers in time."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> Any:
        raise UpstreamTimeout("the upstream did not answer in time")

    async def close(self) -> None:
        return None


async def test_a_call_that_times_out_past_the_threshold_alerts_as_hanging(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    text = config(webhook, alerting_threshold="0", alert_types='["llm_requests_hanging"]')
    gateway = await InProcessGateway.build(tmp_path, text, transport=TimingOut())
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        assert response.status_code == 504
        await until(lambda: len(webhook.posts) >= 1)
    (body,) = webhook.bodies("/slack")
    assert "LLM call hung" in body["text"] and "timed out" in body["text"]


async def test_upstream_failures_alert_as_llm_exceptions_and_client_errors_do_not(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    upstream = ScriptedTransport(
        Canned.json({"error": {"message": "boom", "type": "server_error"}}, status=500),
        Canned.json({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400),
    )
    text = config(webhook, alert_types='["llm_exceptions"]')
    gateway = await InProcessGateway.build(tmp_path, text, transport=upstream)
    async with gateway.running() as client:
        first = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        second = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-wrong"))
        await until(lambda: len(webhook.posts) >= 1)
        await asyncio.sleep(0.1)
    assert (first.status_code, second.status_code, refused.status_code) == (502, 400, 401)
    (body,) = webhook.bodies("/slack")
    assert "LLM call failed" in body["text"] and "502" in body["text"]


# -- deployments ------------------------------------------------------------------------------


async def test_a_cooldown_and_an_outage_alert_once_and_the_recovery_once(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    clock = FakeClock()
    upstream = ScriptedTransport(
        Canned.json({"error": {"message": "slow down", "type": "rate_limit"}}, status=429)
    )
    text = config(webhook, alert_types='["cooldown_deployment", "outage_alerts"]')
    gateway = await InProcessGateway.build(tmp_path, text, transport=upstream, clock=clock)
    async with gateway.running() as client:
        alerts = gateway.state.alerts
        assert alerts is not None
        response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        assert response.status_code == 429
        alerts.check_deployments()
        alerts.check_deployments()  # nothing new
        await until(lambda: len(webhook.posts) >= 2)
        clock.advance(31)
        alerts.check_deployments()
        await until(lambda: len(webhook.posts) >= 3)
        await asyncio.sleep(0.05)
    texts = [body["text"] for body in webhook.bodies("/slack")]
    assert len(texts) == 3, texts
    assert "Deployment cooling down" in texts[0] and "Model group outage" in texts[1]
    assert "Model group recovered" in texts[2]


async def test_the_background_poll_reports_a_cooldown_without_being_asked(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    upstream = ScriptedTransport(
        Canned.json({"error": {"message": "slow down", "type": "rate_limit"}}, status=429)
    )
    text = config(webhook, alert_types='["cooldown_deployment"]')
    gateway = await InProcessGateway.build(tmp_path, text, transport=upstream)
    async with gateway.running() as client:
        await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        await until(lambda: len(webhook.posts) >= 1, timeout=5)
    assert "Deployment cooling down" in webhook.posts[0][2]["text"]


# -- the database -----------------------------------------------------------------------------


async def test_a_failing_spend_log_flush_alerts_once_per_failure_streak(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    text = config(webhook, alert_types='["db_exceptions"]')
    gateway = await InProcessGateway.build(
        tmp_path, text, transport=ScriptedTransport(completion()), flush_interval_ms=20
    )
    async with gateway.running() as client:
        async with aiosqlite.connect(gateway.db_path, isolation_level=None) as other:
            await other.execute("BEGIN IMMEDIATE")  # holds the write lock
            await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
            await until(lambda: gateway.state.flusher.stats().failures >= 3)
            await other.execute("COMMIT")
        await until(lambda: len(webhook.posts) >= 1)
    (body,) = webhook.bodies("/slack")
    detail = body["blocks"][0]["text"]["text"]
    assert "Spend-log write failed" in body["text"] and "database is locked" in detail


# -- delivery ---------------------------------------------------------------------------------


async def test_a_webhook_that_does_not_answer_never_holds_up_a_request(
    tmp_path: Path, webhook: FakeWebhook
) -> None:
    webhook.release = asyncio.Event()  # every post waits until the test lets it go
    upstream = ScriptedTransport(completion(), completion())
    gateway = await InProcessGateway.build(
        tmp_path, config(webhook, alerting_threshold="0"), transport=upstream
    )
    async with gateway.running() as client:
        for _ in range(2):
            response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
            assert response.status_code == 200
        await until(lambda: len(webhook.posts) >= 1)
        # Both calls were answered while the first alert's post is still unanswered.
        assert len(webhook.posts) == 1
        webhook.release.set()
        await until(lambda: len(webhook.posts) >= 2)


async def test_a_failed_post_is_retried_and_the_url_path_is_never_logged(
    webhook: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.alerts")
    secret_path = "/services/T000/B000/secret-part"
    url = webhook.url(secret_path)
    delivery = AlertDelivery(
        AiohttpTransport(pool_size=2), lambda alert: [(url, "slack")], retries=2, backoff_s=0.01
    )
    delivery.start()
    webhook.fail_first = 2
    delivery.put(_alert())
    await until(lambda: delivery.delivered == 1)
    webhook.status = 500  # from now on every attempt fails
    delivery.put(_alert())
    await until(lambda: delivery.failed == 1)
    await delivery.stop(grace_s=1)
    assert len(webhook.posts) == 3 + 3
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "dropped after 3 attempts" in logged and webhook.base in logged
    assert "secret-part" not in logged


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    delivery = AlertDelivery(AiohttpTransport(pool_size=1), lambda alert: [], queue_size=2)
    for _ in range(5):
        delivery.put(_alert())  # no worker running: nothing is taken off the queue
    assert delivery.dropped == 3
    await delivery.stop(grace_s=0)


def _alert() -> Alert:
    return Alert(
        alert_type="llm_exceptions",
        event="llm_exception",
        event_group="proxy",
        event_message="boom",
        level="High",
        timestamp=0.0,
    )


# -- configuration ----------------------------------------------------------------------------


def settings(general: str, environ: Mapping[str, str]) -> AlertSettings | None:
    text = "general_settings:\n" + "".join(f"  {line}\n" for line in general.splitlines())
    return AlertSettings.from_config(parse_config(text, "config.yaml", {}), environ)


@pytest.mark.parametrize(
    ("general", "environ", "expected"),
    [
        pytest.param("alerting: []", {"SLACK_WEBHOOK_URL": "http://s"}, None, id="off"),
        pytest.param('alerting: ["slack"]', {}, None, id="slack-without-url"),
        pytest.param(
            'alerting: ["email"]', {"SLACK_WEBHOOK_URL": "http://s"}, None, id="unsupported"
        ),
        pytest.param(
            'alerting: ["slack"]\nalert_types: ["budget_alerts", "daily_reports"]',
            {"SLACK_WEBHOOK_URL": "http://s"},
            {"budget_alerts": (("http://s", "slack"),)},
            id="only-listed-types",
        ),
        pytest.param(
            'alerting: ["slack", "webhook"]\nalert_types: ["db_exceptions", "budget_alerts"]\n'
            "alert_to_webhook_url: {budget_alerts: [http://a, http://b]}",
            {"SLACK_WEBHOOK_URL": "http://s", "WEBHOOK_URL": "http://w"},
            {
                "db_exceptions": (("http://s", "slack"), ("http://w", "webhook")),
                "budget_alerts": (
                    ("http://a", "slack"),
                    ("http://b", "slack"),
                    ("http://w", "webhook"),
                ),
            },
            id="per-type-urls",
        ),
    ],
)
def test_alerting_settings_route_each_alert_type(
    general: str, environ: Mapping[str, str], expected: dict[str, Any] | None
) -> None:
    found = settings(general, environ)
    assert (None if found is None else found.routes) == expected


def test_defaults_are_litellms_and_args_are_read() -> None:
    found = settings(
        'alerting: ["slack"]\nalerting_threshold: 12\nalerting_args: {budget_alert_ttl: 60}',
        {"SLACK_WEBHOOK_URL": "http://s"},
    )
    assert found is not None
    assert (found.threshold_s, found.budget_alert_ttl_s) == (12.0, 60.0)
    assert "llm_too_slow" in found.alert_types and "outage_alerts" in found.alert_types
    default = settings('alerting: ["slack"]', {"SLACK_WEBHOOK_URL": "http://s"})
    assert default is not None
    assert (default.threshold_s, default.budget_alert_ttl_s) == (300.0, 86400.0)


@pytest.mark.parametrize(
    "general",
    [
        pytest.param('alerting: ["slack"]\nalert_types: ["budget_alert"]', id="unknown-type"),
        pytest.param(
            'alerting: ["slack"]\nalert_to_webhook_url: {nope: http://x}', id="unknown-url-type"
        ),
        pytest.param('alerting: ["slack"]\nalerting_args: {budget_alert_ttl: soon}', id="bad-ttl"),
    ],
)
def test_bad_alerting_settings_are_refused_naming_the_field(general: str) -> None:
    with pytest.raises(ConfigError, match="general_settings"):
        settings(general, {"SLACK_WEBHOOK_URL": "http://s"})


def test_the_alerter_is_built_only_when_alerting_is_configured(tmp_path: Path) -> None:
    gateway = InProcessGateway(tmp_path, MODEL)
    assert gateway.state.alerts is None
