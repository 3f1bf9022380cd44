"""``/budget/*``: reusable budgets (new, update, info, delete, list, settings); master key only.

A budget is a set of limits (``max_budget``, ``budget_duration``, rpm/tpm/parallel) that an
organization, an end user or a key borrows by naming its ``budget_id`` when it sets no budget
of its own; each borrower spends against its own copy (the budget has no spend). Changing a
budget changes every borrower's limits at once. Response shapes are LiteLLM's
(``LiteLLM_BudgetTable``); ``budget_object`` is also what ``litellm_budget_table`` shows on an
organization or end user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..ledger.durations import advance, next_reset, parse_duration
from ..store.hierarchy_rows import BudgetRow
from .common import (
    Action,
    Count,
    Identifier,
    Money,
    authorize,
    check_query,
    decode_body,
    iso,
    json_response,
)
from .hierarchy_records import HierarchyRoutes


class NewBudget(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    budget_id: Identifier | None = None
    max_budget: Money | None = None
    soft_budget: Money | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    # LiteLLM fields accepted and stored nowhere: per-model budgets belong on keys.
    model_max_budget: dict[str, Any] | None = None
    budget_reset_at: str | None = None


class UpdateBudget(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    budget_id: Identifier
    max_budget: Money | UnsetType | None = UNSET
    soft_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    model_max_budget: dict[str, Any] | UnsetType | None = UNSET
    budget_reset_at: str | UnsetType | None = UNSET


class BudgetIds(msgspec.Struct, forbid_unknown_fields=True):
    budgets: list[str]


class DeleteBudget(msgspec.Struct, forbid_unknown_fields=True):
    id: str


def budget_object(row: BudgetRow | None, now: float | None = None) -> dict[str, Any] | None:
    """LiteLLM's budget shape. ``budget_reset_at`` is when the budget's period ends: one
    ``budget_duration`` after it was created (the UTC boundary for an ``@calendar``
    duration), stepped past ``now`` when given; each borrower's own reset is on its record."""
    if row is None:
        return None
    data = msgspec.structs.asdict(row)
    data["created_at"] = iso(row.created_at)
    data["updated_at"] = iso(row.updated_at)
    data["budget_reset_at"] = iso(_reset_at(row, now))
    return data


def _reset_at(row: BudgetRow, now: float | None) -> float | None:
    if row.budget_duration is None or row.created_at is None:
        return None
    try:
        duration = parse_duration(row.budget_duration)
    except ValueError:
        return None
    reset_at = next_reset(duration, row.created_at)
    if now is not None and reset_at <= now:
        reset_at = advance(duration, reset_at, now)
    return reset_at


class BudgetRoutes(HierarchyRoutes[BudgetRow]):
    what = "budget"
    id_field = "budget_id"
    update_type = UpdateBudget
    ignored = ("model_max_budget", "budget_reset_at")
    borrows = False  # a budget is what the others borrow
    row_type = BudgetRow

    def routes(self) -> list[Route]:
        return [
            Route("/budget/new", self.create, methods=["POST"]),
            Route("/budget/update", self.update, methods=["POST", "PATCH"]),
            Route("/budget/info", self.info, methods=["POST"]),
            Route("/budget/settings", self.settings, methods=["GET"]),
            Route("/budget/list", self.list, methods=["GET"]),
            Route("/budget/delete", self.delete, methods=["POST", "DELETE"]),
        ]

    @property
    def records(self) -> Mapping[str, BudgetRow]:
        return self.state.hierarchy.budgets

    async def put(self, row: BudgetRow) -> None:
        await self.state.hierarchy.put_budget(row)

    def show(self, row: BudgetRow) -> Any:
        return budget_object(row, self.state.clock.time())

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewBudget)
        self.check(body)
        budget_id = self.new_id(body.budget_id)
        row = self.new_row(
            body, budget_id, created_at=self.state.clock.time(), created_by=caller.created_by
        )
        await self.put(row)
        return json_response(budget_object(row, row.created_at))

    async def info(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        body = await decode_body(request, BudgetIds)
        now = self.state.clock.time()
        return json_response([budget_object(self.find(b), now) for b in body.budgets])

    async def settings(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        data = budget_object(self.find(self.query_id(request, "budget_id"))) or {}
        return json_response(
            [
                {"field_name": name, "field_value": data.get(name), "field_type": "number"}
                for name in ("max_budget", "soft_budget", "rpm_limit", "tpm_limit")
            ]
        )

    async def list(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        check_query(request, ())
        now = self.state.clock.time()
        return json_response([budget_object(b, now) for b in self.in_order()])

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, DeleteBudget)
        row = self.find(body.id)
        await self.state.hierarchy.remove_budget(row.budget_id)
        return json_response(budget_object(row))
