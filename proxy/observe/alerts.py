"""Alerting: LiteLLM's ``general_settings.alerting`` to Slack and generic webhooks.

Configuration (LiteLLM's names)::

    general_settings:
      alerting: ["slack", "webhook"]   # channels; others (email, pagerduty) are ignored
      alerting_threshold: 300          # seconds: slower calls alert (default 300)
      alert_types: [...]               # which alerts; unset: all of LiteLLM's defaults
      alert_to_webhook_url:            # per alert type, a Slack URL (or list) for that type
        budget_alerts: https://hooks.slack.com/services/...
      alerting_args:
        budget_alert_ttl: 86400        # seconds one budget alert silences its repeats

``slack`` posts to ``SLACK_WEBHOOK_URL`` (``ALERTING_WEBHOOK_URL`` when unset), ``webhook``
to ``WEBHOOK_URL`` (both read from the process environment). What is sent, by alert type:

    llm_exceptions        a call answered 5xx, or the upstream refused the gateway's
                          credential or model (401/403/404)
    llm_too_slow          a successful call took longer than ``alerting_threshold``
    llm_requests_hanging  a call that timed out (504) or was abandoned by its client (499)
                          after more than ``alerting_threshold``: reported when it ends
    budget_alerts         keys, users, teams: 85 % / 95 % of max_budget, budget crossed, a
                          key's soft_budget crossed (``alerting.budgets``)
    cooldown_deployment   a deployment started a cooldown (``alerting.deployments``)
    outage_alerts         every deployment of a model group is cooling; and its recovery
    db_exceptions         a spend-log / spend write to the database failed (once per
                          failure streak)

The request path only calls ``on_call`` (synchronous, a few dict look-ups, never raises);
delivery runs in ``alerting.delivery``'s background worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ..clock import Clock
from ..config import Config, ConfigError
from ..directory import Directory
from ..routing import Router
from ..server.logs import scrub_text
from ..upstream.transport import Transport
from .alerting.budgets import BudgetWatch
from .alerting.delivery import AlertDelivery, Destination
from .alerting.deployments import DeploymentWatch
from .alerting.payload import Alert
from .event import CallEvent

log = logging.getLogger("tollway.alerts")

# LiteLLM's ``AlertType`` names. Those Tollway sends, then those it accepts and never sends.
SENT_TYPES = (
    "llm_exceptions",
    "llm_too_slow",
    "llm_requests_hanging",
    "budget_alerts",
    "db_exceptions",
    "cooldown_deployment",
    "outage_alerts",
)
UNSENT_TYPES = (
    "spend_reports",
    "failed_tracking_spend",
    "daily_reports",
    "new_model_added",
    "model_deprecation_warnings",
    "region_outage_alerts",
    "fallback_reports",
    "new_virtual_key_created",
    "virtual_key_updated",
    "virtual_key_deleted",
    "new_team_created",
    "team_updated",
    "team_deleted",
    "new_internal_user_created",
    "internal_user_updated",
    "internal_user_deleted",
)
DEFAULT_THRESHOLD_S = 300.0
DEFAULT_BUDGET_ALERT_TTL_S = 24 * 60 * 60.0
CHANNELS = ("slack", "webhook")


class AlertSettings(msgspec.Struct, frozen=True, kw_only=True):
    threshold_s: float = DEFAULT_THRESHOLD_S
    alert_types: frozenset[str] = frozenset(SENT_TYPES)
    budget_alert_ttl_s: float = DEFAULT_BUDGET_ALERT_TTL_S
    # Where each alert type goes, resolved once.
    routes: dict[str, tuple[Destination, ...]] = msgspec.field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str]) -> AlertSettings | None:
        """The settings, or None when alerting is off or has nowhere to send.

        Raises ``ConfigError`` for an alert type LiteLLM does not know or a bad value.
        """
        general = config.general_settings
        channels = [c for c in dict.fromkeys(general.alerting) if c in CHANNELS]
        for other in dict.fromkeys(general.alerting):
            if other not in CHANNELS:
                log.warning("alerting channel %r is not supported and is ignored", other)
        if not channels:
            return None
        types = _alert_types(general.alert_types, "general_settings.alert_types")
        per_type = _per_type_urls(general.alert_to_webhook_url)
        slack = environ.get("SLACK_WEBHOOK_URL") or environ.get("ALERTING_WEBHOOK_URL") or None
        webhook = environ.get("WEBHOOK_URL") or None
        routes: dict[str, tuple[Destination, ...]] = {}
        for alert_type in types:
            destinations: list[Destination] = []
            if "slack" in channels:
                urls = per_type.get(alert_type) or ((slack,) if slack else ())
                destinations.extend((url, "slack") for url in urls)
            if "webhook" in channels and webhook:
                destinations.append((webhook, "webhook"))
            if destinations:
                routes[alert_type] = tuple(destinations)
        if "slack" in channels and not slack and not per_type:
            log.warning("alerting: slack is on but SLACK_WEBHOOK_URL is not set")
        if "webhook" in channels and not webhook:
            log.warning("alerting: webhook is on but WEBHOOK_URL is not set")
        if not routes:
            return None
        args = general.alerting_args or {}
        return cls(
            threshold_s=_seconds(
                general.alerting_threshold, DEFAULT_THRESHOLD_S, "alerting_threshold"
            ),
            alert_types=frozenset(routes),
            budget_alert_ttl_s=_seconds(
                args.get("budget_alert_ttl"),
                DEFAULT_BUDGET_ALERT_TTL_S,
                "alerting_args.budget_alert_ttl",
            ),
            routes=routes,
        )


def _alert_types(names: Sequence[str] | None, where: str) -> tuple[str, ...]:
    if names is None:
        return SENT_TYPES
    for name in names:
        if name not in SENT_TYPES and name not in UNSENT_TYPES:
            raise ConfigError(f"{where}: {name!r} is not an alert type")
        if name in UNSENT_TYPES:
            log.info("alert type %r is accepted but Tollway never sends it", name)
    return tuple(name for name in dict.fromkeys(names) if name in SENT_TYPES)


def _per_type_urls(
    mapping: Mapping[str, str | Sequence[str]] | None,
) -> dict[str, tuple[str, ...]]:
    urls: dict[str, tuple[str, ...]] = {}
    for name, value in (mapping or {}).items():
        _alert_types([name], "general_settings.alert_to_webhook_url")
        urls[name] = (value,) if isinstance(value, str) else tuple(value)
    return urls


def _seconds(value: Any, default: float, where: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"general_settings.{where}: expected seconds >= 0, got {value!r}")
    return float(value)


class Alerter:
    """Turns settled calls, router state and database failures into queued alerts."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        directory: Directory,
        router: Router,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
        transport: Transport | None = None,
        poll_interval_s: float = 1.0,
        queue_size: int = 1_000,
    ) -> None:
        self.settings = settings
        self._types = settings.alert_types
        self._wall = wall
        self._threshold_s = settings.threshold_s
        self._budgets = BudgetWatch(directory, settings.budget_alert_ttl_s, wall)
        self._deployments = DeploymentWatch(router, monotonic, wall)
        self._poll_interval_s = poll_interval_s
        self._poller: asyncio.Task[None] | None = None
        # Its own client: alerts must reach the webhook whatever carries upstream calls.
        if transport is None:
            from ..upstream.aiohttp_transport import AiohttpTransport

            transport = AiohttpTransport(pool_size=4)
        self.delivery = AlertDelivery(
            transport,
            self._destinations,
            queue_size=queue_size,
        )

    def _destinations(self, alert: Alert) -> tuple[Destination, ...]:
        return self.settings.routes.get(alert.alert_type, ())

    def _send(self, alert: Alert) -> None:
        if alert.alert_type in self._types:
            self.delivery.put(alert)

    def start(self) -> None:
        self.delivery.start()
        if {"cooldown_deployment", "outage_alerts"} & self._types:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="tollway-alerts-poll"
            )

    async def stop(self, grace_s: float = 5.0) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await self.delivery.stop(grace_s)

    def on_call(self, event: CallEvent) -> None:
        """Called by settle for every call; queues what it triggers, never raises."""
        try:
            if "budget_alerts" in self._types:
                for alert in self._budgets.after_settle(event):
                    self._send(alert)
            call_alert = self._call_alert(event)
            if call_alert is not None:
                self._send(call_alert)
        except Exception:
            log.exception("alerting failed for call %s", event.call_id)

    def _call_alert(self, event: CallEvent) -> Alert | None:
        latency_s = event.latency_ms / 1000
        code = event.status_code
        slow = latency_s > self._threshold_s
        if code in (499, 504) and slow:
            alert_type, name, level = "llm_requests_hanging", "request_hanging", "Medium"
            what = "timed out" if code == 504 else "was abandoned by its client"
            message = f"A call {what} after {latency_s:.1f}s (threshold {self._threshold_s:g}s)"
        elif code >= 500 or (code in (401, 403, 404) and event.deployment is not None):
            alert_type, name, level = "llm_exceptions", "llm_exception", "High"
            message = f"A call failed with status {code}: {event.error_type or 'error'}"
        elif event.status == "success" and slow:
            alert_type, name, level = "llm_too_slow", "slow_response", "Low"
            message = f"A call took {latency_s:.1f}s (threshold {self._threshold_s:g}s)"
        else:
            return None
        return Alert(
            alert_type=alert_type,
            event=name,
            event_group="deployment" if event.deployment else "proxy",
            event_message=message,
            level=level,
            timestamp=event.end_time,
            key_alias=event.key_alias,
            user_id=event.user_id,
            team_id=event.team_id,
            model_group=event.model_group,
            deployment=event.deployment,
            request_id=event.request_id,
            latency_s=round(latency_s, 3),
            status_code=code,
            error=event.error_message,
        )

    def check_deployments(self) -> None:
        """Queue cooldown / outage / recovery alerts for what changed since the last check."""
        for alert in self._deployments.check():
            self._send(alert)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                self.check_deployments()
            except Exception:
                log.exception("deployment health check failed")

    def flush_failed(self, exc: Exception) -> None:
        """The ledger's writer could not write a batch (called once per failure streak)."""
        message = scrub_text(f"{type(exc).__name__}: {exc}")
        self._send(
            Alert(
                alert_type="db_exceptions",
                event="spend_log_write_failed",
                event_group="proxy",
                event_message=(
                    "Writing spend logs and spend to the database failed; the batch is kept "
                    "and retried"
                ),
                level="High",
                timestamp=self._wall(),
                error=message,
            )
        )


def build_alerter(
    config: Config, environ: Mapping[str, str], directory: Directory, router: Router, clock: Clock
) -> Alerter | None:
    """The gateway's alerter, or None when ``general_settings.alerting`` sends nowhere."""
    settings = AlertSettings.from_config(config, environ)
    if settings is None:
        return None
    return Alerter(
        settings,
        directory=directory,
        router=router,
        wall=clock.time,
        monotonic=clock.monotonic,
    )
