"""``/user/*``: internal users (new, update, delete, info, list); master key only.

As in LiteLLM, ``/user/new`` also creates an inference key for the user unless
``auto_create_key`` is false; deleting a user deletes their keys and team memberships.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response

from ..auth import hash_key
from ..errors import InvalidRequest
from ..store import KeyRow, UserRow
from .common import (
    Action,
    AdminState,
    Count,
    Identifier,
    Money,
    authorize,
    check_duration,
    decode_body,
    is_member,
    json_response,
    names_user,
    page_count,
    page_of,
    query_page,
    query_str,
    set_fields,
    with_iso_times,
)
from .keys import key_object, masked, new_secret
from .records import RecordRoutes
from .teams import team_object

UserRole = Literal[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
]


class NewUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier | None = None
    user_email: str | None = None
    user_role: UserRole | None = None
    max_budget: Money | None = None
    budget_duration: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    metadata: dict[str, Any] | None = None
    teams: list[str] = msgspec.field(default_factory=list)
    auto_create_key: bool = True
    key_alias: str | None = None


class UpdateUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier
    user_email: str | UnsetType | None = UNSET
    user_role: UserRole | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET


class DeleteUsers(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: list[str]


def user_object(state: AdminState, row: UserRow) -> dict[str, Any]:
    return with_iso_times(state.directory.with_live_spend(row))


class UserRoutes(RecordRoutes[UserRow]):
    kind = "user"

    @property
    def records(self) -> Mapping[str, UserRow]:
        return self.state.directory.users

    async def put(self, row: UserRow) -> None:
        await self.state.directory.put_user(row)

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewUser)
        check_duration(body.budget_duration, "budget_duration")
        directory = self.state.directory
        user_id = self.new_id(body.user_id)
        for team_id in body.teams:
            if team_id not in directory.teams:
                raise InvalidRequest(f"team {team_id!r} does not exist", param="teams")
        now = self.state.clock.time()
        row = UserRow(
            user_id=user_id,
            user_email=body.user_email,
            user_role=body.user_role,
            max_budget=body.max_budget,
            budget_duration=body.budget_duration,
            models=body.models,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            metadata=dict(body.metadata or {}),
            created_at=now,
        )
        await self.put(row)
        for team_id in body.teams:
            team = directory.teams[team_id]
            if not is_member(team.members, user_id):
                member = {"user_id": user_id, "role": "user"}
                await directory.put_team(replace(team, members=[*team.members, member]))
        result = user_object(self.state, row)
        if body.auto_create_key:
            secret = new_secret()
            key = KeyRow(
                token_hash=hash_key(secret),
                key_alias=body.key_alias,
                key_name=masked(secret),
                user_id=user_id,
                models=list(body.models),
                created_at=now,
                created_by=caller.created_by,
            )
            await directory.put_key(key)
            result.update(key=secret, token=key.token_hash, key_name=key.key_name)
        return json_response(result)

    async def update(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, UpdateUser)
        current = self.find(body.user_id)
        row = await self.save(caller, replace(current, **set_fields(body, skip=("user_id",))))
        return json_response({"user_id": row.user_id, "data": user_object(self.state, row)})

    async def delete(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, DeleteUsers)
        directory = self.state.directory
        for user in self.existing(body.user_ids, "user_ids"):
            user_id = user.user_id
            for key in [k for k in directory.keys.values() if k.user_id == user_id]:
                await directory.remove_key(key.token_hash)
            for team in [t for t in directory.teams.values() if is_member(t.members, user_id)]:
                members = [m for m in team.members if not names_user(m, user_id)]
                await directory.put_team(replace(team, members=members))
            await directory.remove_user(user_id)
        return json_response({"deleted_users": body.user_ids})

    async def info(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        user_id = query_str(request, "user_id")
        if user_id is None:
            raise InvalidRequest("give the user as ?user_id=", param="user_id")
        row = self.find(user_id)
        directory = self.state.directory
        keys = [key_object(self.state, k) for k in directory.keys.values() if k.user_id == user_id]
        teams = [
            team_object(self.state, t)
            for t in directory.teams.values()
            if is_member(t.members, user_id)
        ]
        return json_response(
            {
                "user_id": user_id,
                "user_info": user_object(self.state, row),
                "keys": keys,
                "teams": teams,
            }
        )

    async def list(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_READ)
        page, size = query_page(request, "page_size", 25)
        role = query_str(request, "role")
        users = sorted(
            (u for u in self.state.directory.users.values() if role is None or u.user_role == role),
            key=lambda u: (u.created_at or 0.0, u.user_id),
        )
        chosen = page_of(users, page, size)
        return json_response(
            {
                "users": [user_object(self.state, u) for u in chosen],
                "total": len(users),
                "page": page,
                "page_size": size,
                "total_pages": page_count(len(users), size),
            }
        )
