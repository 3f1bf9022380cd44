"""``/customer/*`` (and the same under ``/end_user/*``): end users; master key only.

An end user is named by a request's ``user`` field or an ``x-litellm-end-user-id`` /
``x-litellm-customer-id`` header. A record gives it a budget and limits (its own, or a reusable
budget's by ``budget_id``), ``blocked`` (its calls are refused with 403) and
``allowed_model_region`` (its calls go only to deployments in that region, see
``routing/region.py``). An end user
without a record is held to ``litellm_settings.max_end_user_budget`` when that is set, and gets
a record when its first spend is flushed. Shapes are LiteLLM's (``LiteLLM_EndUserTable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..hierarchy import customer_account
from ..store.hierarchy_rows import CustomerRow
from .budgets import budget_object
from .common import (
    Action,
    Count,
    Identifier,
    Money,
    authorize,
    check_query,
    decode_body,
    json_response,
)
from .hierarchy_records import HierarchyRoutes

Region = Literal["eu", "us"]


class NewCustomer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier
    alias: str | None = None
    blocked: bool = False
    max_budget: Money | None = None
    budget_id: Identifier | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    allowed_model_region: Region | None = None
    default_model: str | None = None
    metadata: dict[str, Any] | None = None
    spend: Money | None = None
    # LiteLLM fields accepted and not used: a soft budget and per-model budgets are keys'.
    soft_budget: Money | None = None
    model_max_budget: dict[str, Any] | None = None
    object_permission: dict[str, Any] | None = None


class UpdateCustomer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier
    alias: str | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    budget_id: Identifier | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    allowed_model_region: Region | UnsetType | None = UNSET
    default_model: str | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    soft_budget: Money | UnsetType | None = UNSET
    model_max_budget: dict[str, Any] | UnsetType | None = UNSET
    object_permission: dict[str, Any] | UnsetType | None = UNSET


class CustomerIds(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: list[str]


class CustomerRoutes(HierarchyRoutes[CustomerRow]):
    what = "end user"
    id_field = "user_id"
    update_type = UpdateCustomer
    ignored = ("soft_budget", "model_max_budget", "object_permission")
    row_type = CustomerRow

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for prefix in ("/customer", "/end_user"):
            routes += [
                Route(f"{prefix}/new", self.create, methods=["POST"]),
                Route(f"{prefix}/update", self.update, methods=["POST"]),
                Route(f"{prefix}/delete", self.delete, methods=["POST", "DELETE"]),
                Route(f"{prefix}/info", self.info, methods=["GET"]),
                Route(f"{prefix}/list", self.list, methods=["GET"]),
                Route(f"{prefix}/block", self.block, methods=["POST"]),
                Route(f"{prefix}/unblock", self.unblock, methods=["POST"]),
            ]
        return routes

    @property
    def records(self) -> Mapping[str, CustomerRow]:
        return self.state.hierarchy.customers

    async def put(self, row: CustomerRow) -> None:
        await self.state.hierarchy.put_customer(row)

    def show(self, row: CustomerRow) -> Any:
        return self.customer_object(row)

    def customer_object(self, row: CustomerRow) -> dict[str, Any]:
        data = self.with_live_spend(row, customer_account(row.user_id))
        budget = self.state.hierarchy.budgets.get(row.budget_id) if row.budget_id else None
        data["litellm_budget_table"] = budget_object(budget)
        return data

    def find(self, record_id: str) -> CustomerRow:
        # Also an end user known only by its spend under ``max_end_user_budget``.
        row = self.state.hierarchy.customer(record_id)
        return super().find(record_id) if row is None else row

    async def create(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewCustomer)
        self.check(body)
        user_id = self.new_id(body.user_id)
        row = self.new_row(
            body, user_id, spend=body.spend or 0.0, created_at=self.state.clock.time()
        )
        await self.put(row)
        if body.spend:
            hierarchy = self.state.hierarchy
            limits = hierarchy.limits_of(row)
            hierarchy.ledger.set_account(customer_account(row.user_id), limits, spend=body.spend)
        return json_response(self.customer_object(row))

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, CustomerIds)
        for user_id in body.user_ids:
            self.find(user_id)
        for user_id in body.user_ids:
            await self.state.hierarchy.remove_customer(user_id)
        return json_response({"deleted_customers": body.user_ids})

    async def _set_blocked(self, request: Request, blocked: bool) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, CustomerIds)
        hierarchy = self.state.hierarchy
        for user_id in body.user_ids:
            row = hierarchy.customers.get(user_id) or CustomerRow(
                user_id=user_id, created_at=self.state.clock.time()
            )
            await hierarchy.put_customer(msgspec.structs.replace(row, blocked=blocked))
        return json_response({"blocked_users" if blocked else "unblocked_users": body.user_ids})

    async def block(self, request: Request) -> Response:
        return await self._set_blocked(request, True)

    async def unblock(self, request: Request) -> Response:
        return await self._set_blocked(request, False)

    async def info(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        user_id = self.query_id(request, "end_user_id")
        return json_response(self.customer_object(self.find(user_id)))

    async def list(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        check_query(request, ())
        rows = self.in_order()
        rows += [CustomerRow(user_id=user_id) for user_id in self.state.hierarchy.unnamed()]
        return json_response([self.customer_object(c) for c in rows])
