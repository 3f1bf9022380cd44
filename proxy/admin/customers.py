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

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, NotFound
from ..hierarchy import customer_account
from ..store.hierarchy_rows import CustomerRow
from .budgets import budget_object, check_budget_id
from .common import (
    Action,
    AdminRoutes,
    Count,
    Identifier,
    Money,
    authorize,
    check_duration,
    check_query,
    decode_body,
    iso,
    json_response,
    query_str,
    set_fields,
)

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


_IGNORED = ("soft_budget", "model_max_budget", "object_permission")


class CustomerRoutes(AdminRoutes):
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

    def customer_object(self, row: CustomerRow) -> dict[str, Any]:
        hierarchy = self.state.hierarchy
        data = msgspec.structs.asdict(row)
        account = customer_account(row.user_id)
        ledger = hierarchy.ledger
        if ledger.has_account(account):
            state = ledger.account(account)
            data["spend"], data["budget_reset_at"] = state.spend, state.budget_reset_at
        for field in ("created_at", "updated_at", "budget_reset_at"):
            data[field] = iso(data[field])
        budget = hierarchy.budgets.get(row.budget_id) if row.budget_id else None
        data["litellm_budget_table"] = budget_object(budget)
        return data

    def _find(self, user_id: str) -> CustomerRow:
        row = self.state.hierarchy.customer(user_id)
        if row is None:
            raise NotFound(f"end user {user_id!r} not found", param="user_id", code="not_found")
        return row

    async def create(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewCustomer)
        check_duration(body.budget_duration, "budget_duration")
        check_budget_id(self.state.hierarchy, body.budget_id)
        hierarchy = self.state.hierarchy
        if body.user_id in hierarchy.customers:
            raise InvalidRequest(f"end user {body.user_id!r} already exists", param="user_id")
        row = CustomerRow(
            user_id=body.user_id,
            alias=body.alias,
            blocked=body.blocked,
            max_budget=body.max_budget,
            budget_id=body.budget_id,
            budget_duration=body.budget_duration,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            allowed_model_region=body.allowed_model_region,
            default_model=body.default_model,
            metadata=dict(body.metadata or {}),
            spend=body.spend or 0.0,
            created_at=self.state.clock.time(),
        )
        await hierarchy.put_customer(row)
        if body.spend:
            limits = hierarchy.limits_of(row)
            hierarchy.ledger.set_account(customer_account(row.user_id), limits, spend=body.spend)
        return json_response(self.customer_object(row))

    async def update(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, UpdateCustomer)
        if isinstance(body.budget_duration, str):
            check_duration(body.budget_duration, "budget_duration")
        if isinstance(body.budget_id, str):
            check_budget_id(self.state.hierarchy, body.budget_id)
        row = self._find(body.user_id)
        changes = set_fields(body, ("user_id", *_IGNORED))
        updated = msgspec.structs.replace(row, **changes)
        await self.state.hierarchy.put_customer(updated)
        return json_response(self.customer_object(updated))

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, CustomerIds)
        for user_id in body.user_ids:
            self._find(user_id)
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
        check_query(request, ("end_user_id",))
        user_id = query_str(request, "end_user_id")
        if user_id is None:
            raise InvalidRequest("give the end user as ?end_user_id=", param="end_user_id")
        return json_response(self.customer_object(self._find(user_id)))

    async def list(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        check_query(request, ())
        hierarchy = self.state.hierarchy
        rows = sorted(hierarchy.customers.values(), key=lambda c: (c.created_at or 0.0, c.user_id))
        rows += [CustomerRow(user_id=user_id) for user_id in hierarchy.unnamed()]
        return json_response([self.customer_object(c) for c in rows])
