"""``/team/*``: teams (new, update, delete, info, list). Deleting a team deletes its keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, PermissionDenied
from ..store import TeamRow
from .common import (
    Action,
    Caller,
    Count,
    Identifier,
    Money,
    authorize,
    check_duration,
    check_guardrails,
    check_query,
    decode_body,
    is_member,
    json_response,
    page_count,
    page_of,
    query_int,
    query_page,
    query_str,
    set_fields,
)
from .keys import key_object
from .records import RecordRoutes
from .team_members import (
    Member,
    TeamMemberRoutes,
    register_member_budgets,
    resolve_members,
    team_object,
)

# LiteLLM's master key acts as this user; it is the admin of the teams it creates.
DEFAULT_ADMIN_USER = "default_user_id"


# LiteLLM's team fields kept in the team's metadata under their own names (the stages read
# ``model_aliases``; the rest are shown as given).
_METADATA_FIELDS = (
    "model_aliases",
    "organization_id",
    "tags",
    "object_permission",
    "team_member_budget",
    "team_member_key_duration",
    "team_member_rpm_limit",
    "team_member_tpm_limit",
    "model_rpm_limit",
    "model_tpm_limit",
    "prompts",
)


class NewTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier | None = None
    team_alias: str | None = None
    models: list[str] | None = None
    max_budget: Money | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    members: list[Member] | None = None
    members_with_roles: list[Member] | None = None
    admins: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    guardrails: list[str] | None = None
    blocked: bool = False
    model_aliases: dict[str, str] | None = None
    organization_id: str | None = None
    tags: list[str] | None = None
    object_permission: dict[str, Any] | None = None
    team_member_budget: Money | None = None
    team_member_key_duration: str | None = None
    team_member_rpm_limit: Count | None = None
    team_member_tpm_limit: Count | None = None
    model_rpm_limit: dict[str, Count] | None = None
    model_tpm_limit: dict[str, Count] | None = None
    prompts: list[str] | None = None


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
    model_aliases: dict[str, str] | UnsetType | None = UNSET
    organization_id: str | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET
    object_permission: dict[str, Any] | UnsetType | None = UNSET
    team_member_budget: Money | UnsetType | None = UNSET
    team_member_key_duration: str | UnsetType | None = UNSET
    team_member_rpm_limit: Count | UnsetType | None = UNSET
    team_member_tpm_limit: Count | UnsetType | None = UNSET
    model_rpm_limit: dict[str, Count] | UnsetType | None = UNSET
    model_tpm_limit: dict[str, Count] | UnsetType | None = UNSET
    prompts: list[str] | UnsetType | None = UNSET


class DeleteTeams(msgspec.Struct, forbid_unknown_fields=True):
    team_ids: list[str]


def _with_guardrails(
    metadata: dict[str, Any], guardrails: list[str] | None, *, replace_list: bool = False
) -> dict[str, Any]:
    """A team's guardrails live in its metadata, as a key's do (``metadata.guardrails``)."""
    if guardrails is not None:
        metadata["guardrails"] = guardrails
    elif replace_list:
        metadata.pop("guardrails", None)
    return metadata


def _with_fields(metadata: dict[str, Any], body: msgspec.Struct) -> dict[str, Any]:
    for name in _METADATA_FIELDS:
        value = getattr(body, name)
        if isinstance(value, UnsetType):
            continue
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = msgspec.to_builtins(value)
    return metadata


class TeamRoutes(RecordRoutes[TeamRow]):
    kind = "team"

    def routes(self) -> list[Route]:
        return [*super().routes(), *TeamMemberRoutes(self.state).routes()]

    @property
    def records(self) -> Mapping[str, TeamRow]:
        return self.state.directory.teams

    async def put(self, row: TeamRow) -> None:
        await self.state.directory.put_team(row)

    async def _members(
        self, caller: Caller, members: list[Member] | None, with_roles: list[Member] | None
    ) -> list[Any]:
        listed = await resolve_members(self.state, members, "members")
        listed += await resolve_members(self.state, with_roles, "members_with_roles")
        unique: dict[str, Any] = {}
        for member in listed:
            unique.setdefault(member["user_id"], member)
        return list(unique.values())

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, NewTeam)
        check_duration(body.budget_duration, "budget_duration")
        check_guardrails(self.state, body.guardrails)
        team_id = self.new_id(body.team_id)
        members = await self._members(caller, body.members, body.members_with_roles)
        # The creator is the team's admin, as in LiteLLM (whose master key acts as the user
        # ``default_user_id``).
        creator = DEFAULT_ADMIN_USER if caller.is_master else caller.key.user_id
        if creator is not None and all(m["user_id"] != creator for m in members):
            members.append({"user_id": creator, "user_email": None, "role": "admin"})
        metadata = _with_guardrails(dict(body.metadata or {}), body.guardrails)
        row = TeamRow(
            team_id=team_id,
            team_alias=body.team_alias,
            models=list(body.models or []),
            max_budget=body.max_budget,
            budget_duration=body.budget_duration,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            members=members,
            metadata=_with_fields(metadata, body),
            blocked=body.blocked,
            created_at=self.state.clock.time(),
        )
        await self.put(row)
        return json_response(team_object(self.state, row))

    async def update(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, UpdateTeam)
        current = self.find(body.team_id)
        changes = set_fields(
            body,
            skip=("team_id", "members", "members_with_roles", "guardrails", *_METADATA_FIELDS),
        )
        metadata = dict(changes.get("metadata") or current.metadata)
        if not isinstance(body.guardrails, UnsetType):
            check_guardrails(self.state, body.guardrails)
            metadata = _with_guardrails(metadata, body.guardrails, replace_list=True)
        changes["metadata"] = _with_fields(metadata, body)
        if not (
            isinstance(body.members, UnsetType) and isinstance(body.members_with_roles, UnsetType)
        ):
            changes["members"] = await self._members(
                caller,
                None if isinstance(body.members, UnsetType) else body.members,
                None if isinstance(body.members_with_roles, UnsetType) else body.members_with_roles,
            )
        row = await self.save(caller, replace(current, **changes))
        register_member_budgets(self.state, row)
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
        caller = authorize(self.state, request, Action.TEAM_READ, allow_self=True)
        check_query(request, ("team_id",))
        team_id = query_str(request, "team_id")
        if team_id is None:
            if caller.is_master:
                raise InvalidRequest("give the team as ?team_id=", param="team_id")
            team_id = caller.team_scope if not caller.self_only else caller.key.team_id
            if team_id is None:
                raise PermissionDenied("this key belongs to no team", code="self_only")
        caller.check_team(team_id, "team")
        row = self.find(team_id)
        keys = [
            key_object(self.state, k)
            for k in self.state.directory.keys.values()
            if k.team_id == team_id and (not caller.self_only or k is caller.key)
        ]
        return json_response(
            {"team_id": team_id, "team_info": team_object(self.state, row), "keys": keys}
        )

    async def list(self, request: Request) -> Response:
        """The teams, oldest first: a list, or one page of them when ``page``, ``page_size``
        (or ``size``) is given (LiteLLM's ``/v2/team/list`` shape)."""
        caller = authorize(self.state, request, Action.TEAM_READ)
        check_query(request, _LIST_PARAMS)
        user_id = query_str(request, "user_id")
        organization_id = query_str(request, "organization_id")
        teams = sorted(
            self.state.directory.teams.values(), key=lambda t: (t.created_at or 0.0, t.team_id)
        )
        if not caller.is_master:
            teams = [t for t in teams if t.team_id == caller.team_scope]
        if user_id is not None:
            teams = [t for t in teams if is_member(t.members, user_id)]
        if organization_id is not None:
            teams = [t for t in teams if t.metadata.get("organization_id") == organization_id]
        if not any(name in request.query_params for name in ("page", "page_size", "size")):
            return json_response([team_object(self.state, t) for t in teams])
        # ``size`` is the key list's name for it; ``page_size`` LiteLLM's for teams.
        page, size = query_page(request, "page_size", query_int(request, "size", 10))
        return json_response(
            {
                "teams": [team_object(self.state, t) for t in page_of(teams, page, size)],
                "total": len(teams),
                "page": page,
                "page_size": size,
                "total_pages": page_count(len(teams), size),
            }
        )


_LIST_PARAMS = ("user_id", "organization_id", "page", "page_size", "size")
