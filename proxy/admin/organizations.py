"""``/organization/*``: organizations (new, update, delete, info, list); master key only.

An organization sits above teams: a team joins it with ``organization_id`` (``/team/new`` or
``/team/update``), and from then on every call of the team's keys also reserves on the
organization's budget and limits (its own, or a reusable budget's by ``budget_id``) and must
name a model in the organization's ``models`` when that list is not empty. Two teams of one
organization share its budget: admission reserves on both levels in one step. An organization
with teams cannot be deleted (400 naming them). Shapes are LiteLLM's
(``LiteLLM_OrganizationTable`` with its ``litellm_budget_table``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from ..hierarchy import organization_account
from ..store.hierarchy_rows import OrganizationRow
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


class NewOrganization(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    organization_id: Identifier | None = None
    organization_alias: str | None = None
    models: list[str] | None = None
    budget_id: Identifier | None = None
    max_budget: Money | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool = False
    # LiteLLM fields accepted and not used.
    soft_budget: Money | None = None
    model_max_budget: dict[str, Any] | None = None
    object_permission: dict[str, Any] | None = None
    tags: list[str] | None = None


class UpdateOrganization(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    organization_id: Identifier
    organization_alias: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    budget_id: Identifier | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    soft_budget: Money | UnsetType | None = UNSET
    model_max_budget: dict[str, Any] | UnsetType | None = UNSET
    object_permission: dict[str, Any] | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET
    updated_by: str | UnsetType | None = UNSET


class OrganizationIds(msgspec.Struct, forbid_unknown_fields=True):
    organization_ids: list[str]


class OrganizationList(msgspec.Struct, forbid_unknown_fields=True):
    organizations: list[str]


class OrganizationRoutes(HierarchyRoutes[OrganizationRow]):
    what = "organization"
    id_field = "organization_id"
    update_type = UpdateOrganization
    ignored = ("soft_budget", "model_max_budget", "object_permission", "tags", "updated_by")
    row_type = OrganizationRow

    def routes(self) -> list[Route]:
        return [
            Route("/organization/new", self.create, methods=["POST"]),
            Route("/organization/update", self.update, methods=["POST", "PATCH"]),
            Route("/organization/delete", self.delete, methods=["POST", "DELETE"]),
            Route("/organization/info", self.info, methods=["GET", "POST"]),
            Route("/organization/list", self.list, methods=["GET"]),
        ]

    @property
    def records(self) -> Mapping[str, OrganizationRow]:
        return self.state.hierarchy.organizations

    async def put(self, row: OrganizationRow) -> None:
        await self.state.hierarchy.put_organization(row)

    def show(self, row: OrganizationRow) -> Any:
        return self.organization_object(row)

    def organization_object(self, row: OrganizationRow) -> dict[str, Any]:
        data = self.with_live_spend(row, organization_account(row.organization_id))
        limits = self.state.hierarchy.limits_of(row)
        data["litellm_budget_table"] = {
            "budget_id": row.budget_id,
            "max_budget": limits.max_budget,
            "budget_duration": limits.budget_duration,
            "rpm_limit": limits.rpm_limit,
            "tpm_limit": limits.tpm_limit,
            "max_parallel_requests": limits.max_parallel_requests,
        }
        data["teams"] = [
            {"team_id": team.team_id, "team_alias": team.team_alias}
            for team in self._teams_of(row.organization_id)
        ]
        data["members"] = []
        return data

    def _teams_of(self, organization_id: str) -> list[Any]:
        return [
            team
            for team in self.state.directory.teams.values()
            if team.metadata.get("organization_id") == organization_id
        ]

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewOrganization)
        self.check(body)
        organization_id = self.new_id(body.organization_id)
        row = self.new_row(
            body,
            organization_id,
            created_at=self.state.clock.time(),
            created_by=caller.created_by,
        )
        await self.put(row)
        return json_response(self.organization_object(row))

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, OrganizationIds)
        rows = [self.find(organization_id) for organization_id in body.organization_ids]
        for row in rows:
            teams = self._teams_of(row.organization_id)
            if teams:
                names = ", ".join(sorted(team.team_id for team in teams))
                raise InvalidRequest(
                    f"organization {row.organization_id!r} still has teams ({names}); move "
                    "or delete them first",
                    param="organization_ids",
                )
        shown = [self.organization_object(row) for row in rows]
        for row in rows:
            await self.state.hierarchy.remove_organization(row.organization_id)
        return json_response(shown)

    async def info(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        if request.method == "POST":  # LiteLLM's older form: {"organizations": [ids]}
            body = await decode_body(request, OrganizationList)
            return json_response(
                [self.organization_object(self.find(o)) for o in body.organizations]
            )
        organization_id = self.query_id(request, "organization_id")
        return json_response(self.organization_object(self.find(organization_id)))

    async def list(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        check_query(request, ())
        return json_response([self.organization_object(o) for o in self.in_order()])
