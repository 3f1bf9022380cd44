"""The key fields LiteLLM keeps beside the core ones, held in the key's ``metadata``.

LiteLLM itself stores several of these in key metadata (``model_rpm_limit``, ``tags``,
``guardrails``); Tollway keeps all of them there under LiteLLM's names, so the stages read
one place and a record needs no column per field. Admin responses show each one as a
top-level field, as LiteLLM's do.

Enforced (``ENFORCED``): ``aliases``, ``model_max_budget``, ``model_rpm_limit``,
``model_tpm_limit``, ``enforced_params`` (the authorize and admit stages), ``guardrails``,
``allowed_cache_controls`` (the guardrail and cache stages). ``budget_id`` links a reusable
budget. Everything in ``STORED_ONLY`` is kept and shown as given and has no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UnsetType

from ..directory import key_account
from ..errors import InvalidRequest
from ..ledger import Ledger
from ..pipeline.policy import model_account, model_limits
from ..store import KeyRow
from .common import check_duration

ENFORCED = (
    "aliases",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "enforced_params",
    "budget_id",
    "guardrails",
    "allowed_cache_controls",
)
STORED_ONLY = (
    "config",
    "permissions",
    "organization_id",
    "project_id",
    "agent_id",
    "object_permission",
    "prompts",
    "policies",
    "allowed_routes",
    "allowed_passthrough_routes",
    "allowed_vector_store_indexes",
    "access_group_ids",
    "rpm_limit_type",
    "tpm_limit_type",
    "budget_limits",
    "budget_fallbacks",
    "mcp_rpm_limit",
    "tag_rpm_limit",
    "router_settings",
    "auto_rotate",
    "rotation_interval",
    "send_invite_email",
    "disable_global_guardrails",
)
METADATA_FIELDS = ENFORCED + STORED_ONLY
# Shown as {} rather than null when unset, as LiteLLM's responses do.
_DICT_FIELDS = frozenset(
    {"aliases", "config", "permissions", "model_max_budget", "model_rpm_limit", "model_tpm_limit"}
)


def merge_into(metadata: dict[str, Any], body: msgspec.Struct) -> dict[str, Any]:
    """``metadata`` with every metadata-held field ``body`` sets (None or UNSET: left out on
    create; on update None removes the field)."""
    for name in METADATA_FIELDS:
        value = getattr(body, name, None)
        if isinstance(value, UnsetType):
            continue
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = msgspec.to_builtins(value)
    check_model_limits(metadata)
    return metadata


def check_model_limits(metadata: Mapping[str, Any]) -> None:
    """Per-model budgets must be numbers (or LiteLLM's budget objects) with valid periods."""
    budgets = metadata.get("model_max_budget") or {}
    for name in ("model_max_budget", "model_rpm_limit", "model_tpm_limit"):
        if not isinstance(metadata.get(name) or {}, dict):
            raise InvalidRequest(f"{name} must be an object of model names", param=name)
    for model, entry in budgets.items():
        if isinstance(entry, dict):
            unknown = set(entry) - {"max_budget", "budget_limit", "time_period", "budget_duration"}
            unknown -= {"tpm_limit", "rpm_limit"}
            if unknown:
                raise InvalidRequest(
                    f"model_max_budget[{model!r}]: unknown field {sorted(unknown)[0]!r}",
                    param="model_max_budget",
                )
            period = entry.get("budget_duration", entry.get("time_period"))
            if period is not None and not isinstance(period, str):
                raise InvalidRequest(
                    f"model_max_budget[{model!r}]: time_period must be a duration like '1d'",
                    param="model_max_budget",
                )
            check_duration(period, "model_max_budget")
        limits = model_limits(metadata, model)
        if limits is None or limits.max_budget is None or limits.max_budget < 0:
            raise InvalidRequest(
                f"model_max_budget[{model!r}] must be a budget in USD "
                '(a number, or {"budget_limit": ..., "time_period": "1d"})',
                param="model_max_budget",
            )


def register_model_limits(ledger: Ledger, row: KeyRow) -> None:
    """(Re)register the per-model accounts of a key whose limits were just written."""
    metadata = row.metadata
    account = key_account(row.token_hash)
    models: set[str] = set()
    for name in ("model_max_budget", "model_rpm_limit", "model_tpm_limit"):
        table = metadata.get(name)
        if isinstance(table, dict):
            models.update(table)
    for model in models:
        limits = model_limits(metadata, model)
        if limits is not None:
            ledger.set_account(model_account(account, model), limits)


def shown(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata-held fields as top-level response fields."""
    out: dict[str, Any] = {}
    for name in METADATA_FIELDS:
        value = metadata.get(name)
        out[name] = {} if value is None and name in _DICT_FIELDS else value
    return out
