"""Budget alerts, computed from the ledger right after a call settles.

For a key, its user and its team: spend reaching 85 % and 95 % of ``max_budget``
(``threshold_crossed``), reaching it (``budget_crossed``) and, for a key, reaching its
``soft_budget`` (``soft_budget_crossed``). Admission reserves a call's worst case, so spend
may stop short of ``max_budget`` while calls are already refused: a call refused with
``budget_exceeded`` counts as the budget being crossed for the kind of account the refusal
names.

Each (account, mark) is sent at most once per ``ttl_s`` (LiteLLM's
``alerting_args.budget_alert_ttl``): a budget crossed once sends one alert, not one per
request. When one call jumps past several marks, only the highest is sent and the lower ones
count as sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from ...directory import Directory, key_account, team_account, user_account
from ..event import CallEvent
from .payload import Alert

# (fraction of max_budget, event, level), highest first.
MARKS: tuple[tuple[float, str, str], ...] = (
    (1.0, "budget_crossed", "High"),
    (0.95, "threshold_crossed", "Medium"),
    (0.85, "threshold_crossed", "Low"),
)
_GROUP_NAMES = {"key": "Key", "team": "Team", "internal_user": "User"}
# The ledger's refusal names the kind of account: "... would exceed the key budget: ...".
_REFUSED = re.compile(r"would exceed the (key|user|team) budget\b")
_PRUNE_AT = 10_000
_BLANK = Alert(alert_type="budget_alerts", event="", event_group="", event_message="", level="")


class BudgetWatch:
    def __init__(self, directory: Directory, ttl_s: float, wall: Callable[[], float]) -> None:
        self._directory = directory
        self._ttl_s = ttl_s
        self._wall = wall
        self._sent: dict[tuple[str, str, str], float] = {}  # (group, id, mark) -> expiry

    def after_settle(self, event: CallEvent) -> list[Alert]:
        """The budget alerts this settled call triggers (usually none)."""
        refused = None
        if event.error_type == "budget_exceeded" and event.error_message:
            found = _REFUSED.search(event.error_message)
            refused = found.group(1) if found else None
        elif event.cost <= 0:
            return []  # spend did not move: no mark can have been reached
        directory = self._directory
        alerts: list[Alert] = []
        if event.key_hash is not None and (key := directory.keys.get(event.key_hash)) is not None:
            base = _base(
                "key",
                token=key.token_hash,
                key_alias=key.key_alias,
                user_id=key.user_id,
                team_id=key.team_id,
            )
            spend = self._spend(key_account(key.token_hash), key.spend)
            self._check(alerts, base, key.token_hash, spend, key.max_budget, refused == "key")
            if key.soft_budget is not None and spend >= key.soft_budget and spend > 0:
                self._soft(alerts, base, key.token_hash, spend, key.soft_budget)
        if event.user_id is not None and (user := directory.users.get(event.user_id)) is not None:
            base = _base("internal_user", user_id=user.user_id, user_email=user.user_email)
            spend = self._spend(user_account(user.user_id), user.spend)
            self._check(alerts, base, user.user_id, spend, user.max_budget, refused == "user")
        if event.team_id is not None and (team := directory.teams.get(event.team_id)) is not None:
            base = _base("team", team_id=team.team_id, team_alias=team.team_alias)
            spend = self._spend(team_account(team.team_id), team.spend)
            self._check(alerts, base, team.team_id, spend, team.max_budget, refused == "team")
        return alerts

    def _spend(self, account: str, recorded: float) -> float:
        spend = self._directory.ledger.spend(account)
        return recorded if spend is None else spend

    def _check(
        self,
        alerts: list[Alert],
        base: Alert,
        entity: str,
        spend: float,
        max_budget: float | None,
        refused: bool,
    ) -> None:
        if max_budget is None:
            return
        ratio = 1.0 if refused else (spend / max_budget if max_budget > 0 else 1.0)
        for index, (fraction, event, level) in enumerate(MARKS):
            if ratio + 1e-12 < fraction:
                continue
            # The highest mark reached; it and every lower one count as sent.
            marks = [f"{f:g}" for f, _, _ in MARKS[index:]]
            if not self._claim(base.event_group, entity, marks):
                return
            name = _GROUP_NAMES[base.event_group]
            if event == "budget_crossed":
                message = f"{name} budget crossed: spend ${spend:.6g} of ${max_budget:g}"
                if refused:
                    message += "; calls are being refused"
            else:
                message = (
                    f"{name} has used {fraction:.0%} of its budget: ${spend:.6g} of ${max_budget:g}"
                )
            alerts.append(
                _with(
                    base,
                    event,
                    level,
                    message,
                    timestamp=self._wall(),
                    spend=spend,
                    max_budget=max_budget,
                    threshold=fraction,
                )
            )
            return

    def _soft(
        self, alerts: list[Alert], base: Alert, entity: str, spend: float, soft: float
    ) -> None:
        if self._claim(base.event_group, entity, ["soft"]):
            message = f"Key soft budget crossed: spend ${spend:.6g} of soft budget ${soft:g}"
            alerts.append(
                _with(
                    base,
                    "soft_budget_crossed",
                    "Low",
                    message,
                    timestamp=self._wall(),
                    spend=spend,
                    soft_budget=soft,
                )
            )

    def _claim(self, group: str, entity: str, marks: list[str]) -> bool:
        """True (and marks recorded) when the first of ``marks`` is not sent within the TTL."""
        now = self._wall()
        sent = self._sent
        first = sent.get((group, entity, marks[0]))
        if first is not None and first > now:
            return False
        if len(sent) >= _PRUNE_AT:
            for stale in [k for k, expiry in sent.items() if expiry <= now]:
                del sent[stale]
        expiry = now + self._ttl_s
        for mark in marks:
            sent[(group, entity, mark)] = max(expiry, sent.get((group, entity, mark), 0.0))
        return True


def _base(group: str, **fields: str | None) -> Alert:
    """A budget alert for an account of ``group``; event, message and numbers filled in later."""
    return msgspec.structs.replace(_BLANK, event_group=group, **fields)


def _with(base: Alert, event: str, level: str, message: str, **fields: float) -> Alert:
    return msgspec.structs.replace(base, event=event, level=level, event_message=message, **fields)
