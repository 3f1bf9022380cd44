"""``/team/*``: teams (new, update, delete, info, list). Deleting a team deletes its keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response

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
    check_guardrails,
    decode_body,
    is_member,
    json_response,
    query_str,
    set_fields,
    with_iso_times,
)
from .keys import key_object
from .records import RecordRoutes


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
    guardrails: list[str] | None = None
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
    guardrails: list[str] | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET


class DeleteTeams(msgspec.Struct, forbid_unknown_fields=True):
    team_ids: list[str]


def team_object(state: AdminState, row: TeamRow) -> dict[str, Any]:
    data = state.directory.with_live_spend(row)
    data["members_with_roles"] = data.pop("members")
    return with_iso_times(data)


def _with_guardrails(
    metadata: dict[str, Any], guardrails: list[str] | None, *, replace_list: bool = False
) -> dict[str, Any]:
    """A team's guardrails live in its metadata, as a key's do (``metadata.guardrails``)."""
    if guardrails is not None:
        metadata["guardrails"] = guardrails
    elif replace_list:
        metadata.pop("guardrails", None)
    return metadata


def _members(members: list[Member] | None, param: str) -> list[Any]:
    out: list[Any] = []
    for member in members or []:
        if member.user_id is None and member.user_email is None:
            raise InvalidRequest("each member needs a user_id or a user_email", param=param)
        out.append(msgspec.to_builtins(member))
    return out


class TeamRoutes(RecordRoutes[TeamRow]):
    kind = "team"

    @property
    def records(self) -> Mapping[str, TeamRow]:
        return self.state.directory.teams

    async def put(self, row: TeamRow) -> None:
        await self.state.directory.put_team(row)

    async def create(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, NewTeam)
        check_duration(body.budget_duration, "budget_duration")
        check_guardrails(self.state, body.guardrails)
        team_id = self.new_id(body.team_id)
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
            metadata=_with_guardrails(dict(body.metadata or {}), body.guardrails),
            blocked=body.blocked,
            created_at=self.state.clock.time(),
        )
        await self.put(row)
        return json_response(team_object(self.state, row))

    async def update(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, UpdateTeam)
        current = self.find(body.team_id)
        changes = set_fields(body, skip=("team_id", "members", "members_with_roles", "guardrails"))
        if not isinstance(body.guardrails, UnsetType):
            check_guardrails(self.state, body.guardrails)
            metadata = dict(changes.get("metadata") or current.metadata)
            changes["metadata"] = _with_guardrails(metadata, body.guardrails, replace_list=True)
        if not (
            isinstance(body.members, UnsetType) and isinstance(body.members_with_roles, UnsetType)
        ):
            changes["members"] = _members(
                None if isinstance(body.members, UnsetType) else body.members, "members"
            ) + _members(
                None if isinstance(body.members_with_roles, UnsetType) else body.members_with_roles,
                "members_with_roles",
            )
        row = await self.save(caller, replace(current, **changes))
        return json_response({"team_id": row.team_id, "data": team_object(self.state, row)})

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, DeleteTeams)
        directory = self.state.directory
        deleted_keys = 0
        for team in self.existing(body.team_ids, "team_ids"):
            # Keys first: a key must never outlive the team whose budget bounds it.
            for key in [k for k in directory.keys.values() if k.team_id == team.team_id]:
                await directory.remove_key(key.token_hash)
                deleted_keys += 1
            await directory.remove_team(team.team_id)
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
        row = self.find(team_id)
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
