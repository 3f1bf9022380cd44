"""The authorize stage: which model a key may call, under which name, with which fields.

Per call, in order: the key's ``aliases`` (then its team's ``model_aliases``) rename the
requested model; the key's, user's and team's model lists must each allow the result; the
key's ``enforced_params`` must be present in the body. A model list allows a model when it
is empty, names it, holds ``*`` (every model), ``all-team-models`` (whatever the team
allows), a provider wildcard (``openai/*``) that the model's name matches, or a model access
group (``model_info.access_groups``) the model belongs to. Settings live in the records'
``metadata`` under LiteLLM's names, so a key made by LiteLLM's scripts works unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..auth import Principal, Role
from ..config import ModelEntry
from ..errors import InvalidRequest, PermissionDenied
from ..ledger import Ledger, Limits
from ..request import ParsedRequest

ALL_TEAM_MODELS = "all-team-models"
ALL_MODELS = "*"
# The per-model limits a key may carry (``model_max_budget``, ``model_rpm_limit``,
# ``model_tpm_limit``) are ledger accounts of their own, named by this prefix + model.
MODEL_ACCOUNT = ":model:"


MEMBER_BUDGETS = "member_budgets"


def member_account(team_id: str, user_id: str) -> str:
    """The account of one member's ``max_budget_in_team`` (``/team/member_update``)."""
    return f"team:{team_id}:member:{user_id}"


def member_accounts(ledger: Ledger, principal: Principal) -> list[str]:
    """The member-budget account a call reserves on, when the key's team gives its user one
    (registered from the team's members on first use)."""
    team, user = principal.team, principal.user
    if team is None or user is None or not team.metadata.get(MEMBER_BUDGETS):
        return []
    account = member_account(team.team_id, user.user_id)
    if not ledger.has_account(account):
        for member in team.members:
            if isinstance(member, dict) and member.get("user_id") == user.user_id:
                budget = _number(member.get("max_budget_in_team"))
                if budget is None:
                    return []
                rpm, tpm = member.get("rpm_limit"), member.get("tpm_limit")
                ledger.set_account(account, Limits(max_budget=budget, rpm_limit=rpm, tpm_limit=tpm))
                break
        else:
            return []
    return [account]


def model_account(key_account: str, model: str) -> str:
    return f"{key_account}{MODEL_ACCOUNT}{model}"


def allows(allowed: list[str], model: str, groups: Mapping[str, frozenset[str]]) -> bool:
    """Whether a model list allows ``model`` (an empty list allows every model)."""
    if not allowed or model in allowed:
        return True
    for entry in allowed:
        if entry in (ALL_MODELS, ALL_TEAM_MODELS):
            return True
        if entry.endswith("/*") and model.startswith(entry[:-1]):
            return True
        members = groups.get(entry)
        if members is not None and model in members:
            return True
    return False


def client_fallbacks(request: ParsedRequest) -> tuple[str, ...]:
    """The request's own fallbacks (LiteLLM's ``fallbacks``: names or ``{"model": ...}``)."""
    entries = getattr(request.typed, "fallbacks", None)
    if not entries:
        return ()
    names = []
    for entry in entries:
        name = entry.get("model") if isinstance(entry, dict) else entry
        if isinstance(name, str):
            names.append(name)
    return tuple(names)


def access_groups(entries: Iterable[ModelEntry]) -> dict[str, frozenset[str]]:
    """Each model access group (``model_info.access_groups``) and the model names in it."""
    groups: dict[str, set[str]] = {}
    for entry in entries:
        for group in entry.model_info.access_groups:
            groups.setdefault(group, set()).add(entry.model_name)
    return {group: frozenset(names) for group, names in groups.items()}


def has_model_limits(metadata: Mapping[str, Any]) -> bool:
    return bool(
        metadata.get("model_max_budget")
        or metadata.get("model_rpm_limit")
        or metadata.get("model_tpm_limit")
    )


def _number(value: Any) -> float | None:
    """A finite, non-negative number (LiteLLM sends budgets as strings too), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _entry(metadata: Mapping[str, Any], name: str, model: str) -> Any:
    table = metadata.get(name)
    return table.get(model) if isinstance(table, dict) else None


def model_limits(metadata: Mapping[str, Any], model: str) -> Limits | None:
    """The limits a key sets on one model: ``model_max_budget`` (a number, or LiteLLM's
    ``{"budget_limit"|"max_budget": ..., "time_period"|"budget_duration": ...}``) and
    ``model_rpm_limit`` / ``model_tpm_limit``; None when it sets none."""
    budget = duration = None
    entry = _entry(metadata, "model_max_budget", model)
    if isinstance(entry, dict):
        budget = _number(entry.get("max_budget", entry.get("budget_limit")))
        period = entry.get("budget_duration", entry.get("time_period"))
        duration = period if isinstance(period, str) else None
    else:
        budget = _number(entry)
    rpm = _number(_entry(metadata, "model_rpm_limit", model))
    tpm = _number(_entry(metadata, "model_tpm_limit", model))
    if budget is None and rpm is None and tpm is None:
        return None
    return Limits(
        max_budget=budget,
        rpm_limit=None if rpm is None else int(rpm),
        tpm_limit=None if tpm is None else int(tpm),
        budget_duration=duration,
    )


def model_accounts(
    ledger: Ledger, key_account: str, metadata: Mapping[str, Any], model: str
) -> list[str]:
    """The per-model account a call to ``model`` also reserves on, registered on first use
    (a key's update re-registers every model it names, see the admin API)."""
    account = model_account(key_account, model)
    if not ledger.has_account(account):
        limits = model_limits(metadata, model)
        if limits is None:
            return []
        ledger.set_account(account, limits)
    return [account]


class ModelPolicy:
    """The authorize stage; ``groups`` maps each access group to its model names."""

    def __init__(self, groups: Mapping[str, frozenset[str]] | None = None) -> None:
        self.groups: Mapping[str, frozenset[str]] = groups or {}

    def alias(self, principal: Principal, model: str) -> str:
        key = principal.key
        if key is not None and key.metadata:
            aliases = key.metadata.get("aliases")
            if isinstance(aliases, dict) and isinstance(aliases.get(model), str):
                return str(aliases[model])
        team = principal.team
        if team is not None and team.metadata:
            aliases = team.metadata.get("model_aliases")
            if isinstance(aliases, dict) and isinstance(aliases.get(model), str):
                return str(aliases[model])
        return model

    def check_models(self, principal: Principal, model: str) -> None:
        """The model allowlists of the key, its user and its team all have to allow it."""
        if principal.role is not Role.KEY:
            return
        for owner, allowed in (
            ("key", principal.key.models if principal.key else None),
            ("user", principal.user.models if principal.user else None),
            ("team", principal.team.models if principal.team else None),
        ):
            if allowed and not allows(allowed, model, self.groups):
                raise PermissionDenied(
                    f"this {owner} may not use model {model!r}",
                    param="model",
                    code="model_not_allowed",
                )

    def may_use(self, principal: Principal, model: str) -> bool:
        try:
            self.check_models(principal, model)
        except PermissionDenied:
            return False
        return True

    def visible(
        self, principal: Principal, models: list[str], *, groups: bool = False
    ) -> list[str]:
        """The models (or, with ``groups``, the access groups) ``principal`` may use."""
        if groups:
            return [
                group
                for group, members in sorted(self.groups.items())
                if any(self.may_use(principal, model) for model in members)
            ]
        return [model for model in models if self.may_use(principal, model)]

    def __call__(self, principal: Principal, request: ParsedRequest) -> None:
        if principal.role is not Role.KEY:
            return
        # Aliases first: the allowlists name the models a key may reach, not its nicknames.
        if (principal.key is not None and principal.key.metadata) or principal.team is not None:
            target = self.alias(principal, request.model)
            if target != request.model:
                request.model = target
        self.check_models(principal, request.model)
        # A fallback the request names is a model it may end up calling.
        for fallback in client_fallbacks(request):
            self.check_models(principal, self.alias(principal, fallback))
        key = principal.key
        if key is not None and key.metadata:
            enforced = key.metadata.get("enforced_params")
            if enforced:
                _check_enforced(enforced, request.body)


def _check_enforced(enforced: list[Any], body: bytes) -> None:
    """Each enforced param (``user``, ``metadata.generation_name``) must be in the body."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    for name in enforced:
        value = data
        for part in str(name).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise InvalidRequest(
                f"BadRequest please pass param={name} in request body: "
                "this key requires it (enforced_params)",
                param=str(name),
            )
