"""Records of the hierarchy above and below keys: organizations, end users, reusable budgets.

A leaf (msgspec only), so the SQLite store can hold their tables beside keys, teams and users.
Field names are LiteLLM's. ``spend`` and ``budget_reset_at`` belong to the ledger, as for keys
(written by the flusher only). A reusable budget has no spend of its own: it lends its limits
to every record that names it by ``budget_id`` and sets none of its own.
"""

from __future__ import annotations

from typing import Any

import msgspec


class BudgetRow(msgspec.Struct, kw_only=True):
    budget_id: str
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    created_at: float | None = None
    updated_at: float | None = None
    created_by: str | None = None


class CustomerRow(msgspec.Struct, kw_only=True):
    """An end user (LiteLLM's "customer"): named by a request's ``user`` field or headers."""

    user_id: str
    alias: str | None = None
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    budget_id: str | None = None
    blocked: bool = False
    allowed_model_region: str | None = None
    default_model: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None


class KeyBudgetSpendRow(msgspec.Struct, kw_only=True):
    """The spend of one key on the reusable budget it names (``budget_id``), kept apart from
    the key's own spend: the budget has its own duration and resets, and a key moved to
    another budget starts a new row. ``account`` is ``<token_hash>:<budget_id>``."""

    account: str
    spend: float = 0.0
    budget_reset_at: float | None = None


class OrganizationRow(msgspec.Struct, kw_only=True):
    organization_id: str
    organization_alias: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    budget_id: str | None = None
    blocked: bool = False
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    created_by: str | None = None
