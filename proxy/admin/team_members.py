"""Team membership: ``/team/member_add``, ``/team/member_update``, ``/team/member_delete``.

A member is stored as ``{"user_id", "user_email", "role"}`` (and ``max_budget_in_team``
when it has one). Every member is a user: adding one by an unknown ``user_id`` creates that
user, and one given only by ``user_email`` is the user with that email (created with a new
id when there is none), as LiteLLM does. A member's ``max_budget_in_team`` is a budget on
what that user spends through the team's keys: a ledger account of its own
(``team:<team>:member:<user>``), reserved on by the admit stage like every other budget.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from ..ledger import Limits
from ..pipeline.policy import MEMBER_BUDGETS, member_account
from ..store import TeamRow, UserRow
from .common import (
    Action,
    AdminRoutes,
    AdminState,
    Count,
    Identifier,
    Money,
    authorize,
    decode_body,
    find_record,
    json_response,
    names_user,
    with_iso_times,
)


def team_object(state: AdminState, row: TeamRow) -> dict[str, Any]:
    data = state.directory.with_live_spend(row)
    data["members_with_roles"] = data.pop("members")
    metadata = row.metadata
    data["model_aliases"] = metadata.get("model_aliases")
    data["organization_id"] = metadata.get("organization_id")
    data["tags"] = metadata.get("tags")
    data["guardrails"] = metadata.get("guardrails")
    return with_iso_times(data)


class Member(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier | None = None
    user_email: str | None = None
    role: Literal["admin", "user"] = "user"


class MemberAdd(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier
    member: Member | list[Member]
    max_budget_in_team: Money | None = None


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier
    user_id: Identifier | None = None
    user_email: str | None = None
    role: Literal["admin", "user"] | None = None
    max_budget_in_team: Money | None = None
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None


class MemberDelete(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    team_id: Identifier
    user_id: Identifier | None = None
    user_email: str | None = None


async def resolve_members(
    state: AdminState, members: list[Member] | None, param: str
) -> list[dict[str, Any]]:
    """Members as stored, creating the users they name that do not exist yet."""
    directory = state.directory
    out: list[dict[str, Any]] = []
    for member in members or []:
        user_id, email = member.user_id, member.user_email
        if user_id is None and email is None:
            raise InvalidRequest("each member needs a user_id or a user_email", param=param)
        if user_id is None:
            user_id = next(
                (u.user_id for u in directory.users.values() if u.user_email == email), None
            )
        user = directory.users.get(user_id) if user_id is not None else None
        if user is None:
            user_id = user_id or str(uuid.uuid4())
            user = UserRow(user_id=user_id, user_email=email, created_at=state.clock.time())
            await directory.put_user(user)
        out.append({"user_id": user.user_id, "user_email": user.user_email, "role": member.role})
    return out


def find_member(team: TeamRow, user_id: str | None, email: str | None) -> int | None:
    """The index of the member ``user_id`` (or ``email``) names, or None."""
    if user_id is None and email is None:
        raise InvalidRequest("give the member as user_id or user_email", param="user_id")
    for index, member in enumerate(team.members):
        if user_id is not None:
            if names_user(member, user_id):
                return index
        elif isinstance(member, dict) and member.get("user_email") == email:
            return index
    return None


def register_member_budgets(state: AdminState, team: TeamRow) -> None:
    """(Re)register the ledger account of each member with a budget in ``team``."""
    ledger = state.directory.ledger
    for member in team.members:
        if isinstance(member, dict) and member.get("max_budget_in_team") is not None:
            account = member_account(team.team_id, str(member.get("user_id")))
            ledger.set_account(
                account,
                Limits(
                    max_budget=float(member["max_budget_in_team"]),
                    rpm_limit=member.get("rpm_limit"),
                    tpm_limit=member.get("tpm_limit"),
                ),
            )


def membership(state: AdminState, team: TeamRow, user_id: str) -> dict[str, Any]:
    """A user's membership of ``team`` as ``/user/info`` shows it (LiteLLM's shape)."""
    index = find_member(team, user_id, None)
    member = team.members[index] if index is not None else {}
    spend = state.directory.spend_of(member_account(team.team_id, user_id))
    budget = member.get("max_budget_in_team")
    return {
        "user_id": user_id,
        "team_id": team.team_id,
        "role": member.get("role"),
        "spend": spend,
        "budget_id": None,
        "litellm_budget_table": None if budget is None else {"max_budget": budget},
    }


class TeamMemberRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        return [
            Route("/team/member_add", self.add, methods=["POST"]),
            Route("/team/member_update", self.update, methods=["POST"]),
            Route("/team/member_delete", self.delete, methods=["POST"]),
        ]

    def _team(self, team_id: str) -> TeamRow:
        return find_record(self.state.directory.teams, team_id, "team", "team_id")

    async def _save(self, team: TeamRow) -> None:
        budgets = any(isinstance(m, dict) and "max_budget_in_team" in m for m in team.members)
        if budgets != bool(team.metadata.get(MEMBER_BUDGETS)):
            # The flag the admit stage reads to look for member budgets at all.
            team = replace(team, metadata={**team.metadata, MEMBER_BUDGETS: budgets})
        await self.state.directory.put_team(team)
        register_member_budgets(self.state, team)

    async def add(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, MemberAdd)
        team = self._team(body.team_id)
        given = body.member if isinstance(body.member, list) else [body.member]
        added = await resolve_members(self.state, given, "member")
        for member in added:
            if find_member(team, member["user_id"], None) is not None:
                raise InvalidRequest(
                    f"user {member['user_id']!r} is already a member of team {team.team_id!r}",
                    param="member",
                )
            if body.max_budget_in_team is not None:
                member["max_budget_in_team"] = body.max_budget_in_team
        team = replace(team, members=[*team.members, *added])
        await self._save(team)
        users = [self.state.directory.users[m["user_id"]] for m in added]
        return json_response(
            {
                **team_object(self.state, team),
                "updated_users": [msgspec.structs.asdict(u) for u in users],
                "updated_team_memberships": [
                    membership(self.state, team, m["user_id"]) for m in added
                ],
            }
        )

    async def update(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, MemberUpdate)
        team = self._team(body.team_id)
        index = find_member(team, body.user_id, body.user_email)
        if index is None:
            raise InvalidRequest("that user is not a member of this team", param="user_id")
        member = dict(team.members[index])
        if body.role is not None:
            member["role"] = body.role
        for name in ("max_budget_in_team", "tpm_limit", "rpm_limit"):
            value = getattr(body, name)
            if value is not None:
                member[name] = value
        members = list(team.members)
        members[index] = member
        team = replace(team, members=members)
        await self._save(team)
        return json_response(
            {
                "team_id": team.team_id,
                "user_id": member.get("user_id"),
                "user_email": member.get("user_email"),
                "max_budget_in_team": member.get("max_budget_in_team"),
                "tpm_limit": member.get("tpm_limit"),
                "rpm_limit": member.get("rpm_limit"),
            }
        )

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.TEAM_WRITE)
        body = await decode_body(request, MemberDelete)
        team = self._team(body.team_id)
        index = find_member(team, body.user_id, body.user_email)
        if index is None:
            raise InvalidRequest("that user is not a member of this team", param="user_id")
        removed = team.members[index]
        team = replace(team, members=[m for i, m in enumerate(team.members) if i != index])
        await self._save(team)
        self.state.directory.ledger.drop_account(
            member_account(team.team_id, str(removed.get("user_id")))
        )
        return json_response(team_object(self.state, team))
