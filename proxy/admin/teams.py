"""``/team/*``: teams (new, update, delete, info, list). Deleting a team deletes its keys."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from ..store import TeamRow
from .common import (
    Action,
    AdminState,
    Count,
    Identifier,
    Money,
    authorize,
    check_duration,
    decode_body,
    find_record,
    is_member,
    json_response,
    query_str,
    set_fields,
    with_iso_times,
)
from .keys import key_object


class Member(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    user_id: Identifier | None = None
    user_email: str | None = None
    role: Literal["admin", "user"] = "user"


class NewTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier | None = None
    team_alias: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    max_budget: Money | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    members: list[Member] | None = None
    members_with_roles: list[Member] | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool = False


class UpdateTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier
    team_alias: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    members: list[Member] | UnsetType | None = UNSET
    members_with_roles: list[Member] | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET


class DeleteTeams(msgspec.Struct, forbid_unknown_fields=True):
    team_ids: list[str]


def team_object(state: AdminState, row: TeamRow) -> dict[str, Any]:
    data = state.directory.with_live_spend(row)
    data["members_with_roles"] = data.pop("members")
    return with_iso_times(data)


def _members(members: list[Member] | None, param: str) -> list[Any]:
    out: list[Any] = []
    for member in members or []:
        if member.user_id is None and member.user_email is None:
            raise InvalidRequest("each member needs a user_id or a user_email", param=param)
        out.append(msgspec.to_builtins(member))
    return out


class TeamRoutes:
    def __init__(self, state: AdminState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/team/new", self.new, methods=["POST"]),
            Route("/team/update", self.update, methods=["POST"]),
            Route("/team/delete", self.delete, methods=["POST"]),
            Route("/team/info", self.info, methods=["GET"]),
            Route("/team/list", self.list, methods=["GET"]),
        ]

    def _find(self, team_id: str, param: str = "team_id") -> TeamRow:
        return find_record(self.state.directory.teams, team_id, "team", param)

    async def new(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, NewTeam)
        check_duration(body.budget_duration, "budget_duration")
        team_id = body.team_id or str(uuid.uuid4())
        if team_id in self.state.directory.teams:
            raise InvalidRequest(f"team {team_id!r} already exists", param="team_id")
        members = _members(body.members, "members") + _members(
            body.members_with_roles, "members_with_roles"
        )
        row = TeamRow(
            team_id=team_id,
            team_alias=body.team_alias,
            models=body.models,
            max_budget=body.max_budget,
            budget_duration=body.budget_duration,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            members=members,
            metadata=dict(body.metadata or {}),
            blocked=body.blocked,
            created_at=self.state.clock.time(),
        )
        await self.state.directory.put_team(row)
        return json_response(team_object(self.state, row))

    async def update(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, UpdateTeam)
        current = self._find(body.team_id)
        changes = set_fields(body, skip=("team_id", "members", "members_with_roles"))
        if not (
            isinstance(body.members, UnsetType) and isinstance(body.members_with_roles, UnsetType)
        ):
            changes["members"] = _members(
                None if isinstance(body.members, UnsetType) else body.members, "members"
            ) + _members(
                None if isinstance(body.members_with_roles, UnsetType) else body.members_with_roles,
                "members_with_roles",
            )
        row = replace(current, **changes)
        check_duration(row.budget_duration, "budget_duration")
        await self.state.directory.put_team(row)
        return json_response({"team_id": row.team_id, "data": team_object(self.state, row)})

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, DeleteTeams)
        if not body.team_ids:
            raise InvalidRequest("give the teams to delete in `team_ids`", param="team_ids")
        for team_id in body.team_ids:
            self._find(team_id, "team_ids")
        directory = self.state.directory
        deleted_keys = 0
        for team_id in body.team_ids:
            # Keys first: a key must never outlive the team whose budget bounds it.
            for row in [k for k in directory.keys.values() if k.team_id == team_id]:
                await directory.remove_key(row.token_hash)
                deleted_keys += 1
            await directory.remove_team(team_id)
        return json_response({"deleted_teams": body.team_ids, "deleted_keys": deleted_keys})

    async def info(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.TEAM_READ)
        team_id = query_str(request, "team_id")
        if team_id is None:
            if caller.is_master:
                raise InvalidRequest("give the team as ?team_id=", param="team_id")
            team_id = caller.team_scope
            assert team_id is not None
        caller.check_team(team_id, "the team")
        row = self._find(team_id)
        keys = [
            key_object(self.state, k)
            for k in self.state.directory.keys.values()
            if k.team_id == team_id
        ]
        return json_response(
            {"team_id": team_id, "team_info": team_object(self.state, row), "keys": keys}
        )

    async def list(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.TEAM_READ)
        user_id = query_str(request, "user_id")
        teams = sorted(
            self.state.directory.teams.values(), key=lambda t: (t.created_at or 0.0, t.team_id)
        )
        if not caller.is_master:
            teams = [t for t in teams if t.team_id == caller.team_scope]
        if user_id is not None:
            teams = [t for t in teams if is_member(t.members, user_id)]
        return json_response([team_object(self.state, t) for t in teams])
