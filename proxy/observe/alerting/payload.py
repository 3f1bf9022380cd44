"""``Alert``: one alert, and its two wire formats.

Slack (and Slack-compatible endpoints such as Discord's ``/slack`` URLs) receive Slack's
incoming-webhook JSON: ``{"text": <fallback>, "blocks": [<one mrkdwn section>]}``.

A generic webhook receives the ``Alert`` itself as a JSON object, every field present (null
when it does not apply). Budget alerts carry LiteLLM's webhook fields (``spend``,
``max_budget``, ``token`` — the key's sha256 hash, never the key — ``user_id``, ``team_id``,
``user_email``, ``key_alias``, ``event``, ``event_group``, ``event_message``), so a receiver
written for LiteLLM's budget webhooks reads them unchanged.
"""

from __future__ import annotations

import time

import msgspec

# ``event`` values, with the title a Slack message shows for each.
TITLES = {
    "budget_crossed": "Budget crossed",
    "threshold_crossed": "Budget threshold reached",
    "soft_budget_crossed": "Soft budget crossed",
    "slow_response": "Slow LLM call",
    "request_hanging": "LLM call hung",
    "llm_exception": "LLM call failed",
    "deployment_cooldown": "Deployment cooling down",
    "outage": "Model group outage",
    "outage_recovered": "Model group recovered",
    "spend_log_write_failed": "Spend-log write failed",
}


class Alert(msgspec.Struct, kw_only=True):
    alert_type: str  # LiteLLM's alert type name: budget_alerts, llm_too_slow, ...
    event: str  # one of ``TITLES``
    event_group: str  # key | team | internal_user | deployment | model_group | proxy
    event_message: str
    level: str  # Low | Medium | High, as LiteLLM grades them
    timestamp: float = msgspec.field(default_factory=time.time)
    spend: float | None = None
    max_budget: float | None = None
    soft_budget: float | None = None
    threshold: float | None = None  # the fraction of max_budget reached: 0.85, 0.95, 1.0
    token: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    team_id: str | None = None
    team_alias: str | None = None
    model_group: str | None = None
    deployment: str | None = None
    request_id: str | None = None
    latency_s: float | None = None
    status_code: int | None = None
    error: str | None = None  # scrubbed of anything key-shaped


_encoder = msgspec.json.Encoder()
# Slack rejects a section whose text is over 3,000 characters.
_SLACK_SECTION_LIMIT = 3000
_DETAILS = (
    ("key_alias", "Key alias"),
    ("user_id", "User"),
    ("user_email", "User email"),
    ("team_id", "Team"),
    ("team_alias", "Team alias"),
    ("model_group", "Model group"),
    ("deployment", "Deployment"),
    ("request_id", "Request id"),
    ("status_code", "Status"),
    ("error", "Error"),
)


def webhook_body(alert: Alert) -> bytes:
    return _encoder.encode(alert)


def slack_body(alert: Alert) -> bytes:
    title = TITLES.get(alert.event, alert.event)
    lines = [
        f"*{title}* (`{alert.alert_type}`)",
        f"Level: `{alert.level}`",
        f"Timestamp: `{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(alert.timestamp))} UTC`",
        "",
        alert.event_message,
    ]
    if alert.spend is not None:
        budget = "" if alert.max_budget is None else f" of max budget ${alert.max_budget:g}"
        lines.append(f"Spend: `${alert.spend:.6g}`{budget}")
    if alert.soft_budget is not None:
        lines.append(f"Soft budget: `${alert.soft_budget:g}`")
    if alert.latency_s is not None:
        lines.append(f"Time taken: `{alert.latency_s:.3f}s`")
    for field, label in _DETAILS:
        value = getattr(alert, field)
        if value is not None:
            lines.append(f"{label}: `{value}`")
    text = "\n".join(lines)
    if len(text) > _SLACK_SECTION_LIMIT:
        text = text[: _SLACK_SECTION_LIMIT - 3] + "..."
    fallback = f"{alert.level}: {title}: {alert.event_message}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return _encoder.encode({"text": fallback[:_SLACK_SECTION_LIMIT], "blocks": blocks})
