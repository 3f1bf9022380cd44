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
from ..directory import user_account
from ..errors import InvalidRequest, NotFound
from ..ledger import Limits
from ..store import KeyRow, UserRow
from ..store.reports import total_spend
from .common import (
    Action,
    AdminState,
    Count,
    Identifier,
    Money,
    authorize,
    check_duration,
    check_guardrails,
    check_query,
    decode_body,
    expiry,
    is_member,
    iso,
    json_response,
    names_user,
    page_count,
    page_of,
    query_page,
    query_str,
    set_fields,
    with_iso_times,
)
from .key_fields import merge_into, register_model_limits
from .keys import key_object, masked, new_secret
from .records import RecordRoutes
from .team_members import membership, team_object

# LiteLLM's name for the whole proxy's spend (its global budget), read as a user.
PROXY_BUDGET_USER = "litellm-proxy-budget"

UserRole = Literal[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
]


class NewUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """LiteLLM's ``NewUserRequest``: the user's fields, and the fields of the key made for
    the user (``auto_create_key``): ``key_alias``, ``duration``, ``aliases``, ``team_id``
    and the key fields kept in the key's metadata."""

    user_id: Identifier | None = None
    user_email: str | None = None
    user_alias: str | None = None
    user_role: UserRole | None = None
    max_budget: Money | None = None
    budget_duration: str | None = None
    models: list[str] | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    metadata: dict[str, Any] | None = None
    teams: list[str] | None = None
    team_id: Identifier | None = None
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: str | None = None
    spend: Money | None = None
    send_invite_email: bool | None = None
    aliases: dict[str, str] | None = None
    guardrails: list[str] | None = None
    allowed_cache_controls: list[str] | None = None
    config: dict[str, Any] | None = None
    permissions: dict[str, Any] | None = None
    model_max_budget: dict[str, Any] | None = None
    model_rpm_limit: dict[str, Count] | None = None
    model_tpm_limit: dict[str, Count] | None = None


class UpdateUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Identifier | None = None
    user_email: str | UnsetType | None = UNSET
    user_alias: str | UnsetType | None = UNSET
    user_role: UserRole | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    spend: Money | UnsetType | None = UNSET


class DeleteUsers(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: list[str]


def user_object(state: AdminState, row: UserRow) -> dict[str, Any]:
    data = with_iso_times(state.directory.with_live_spend(row))
    data["user_alias"] = row.metadata.get("user_alias")
    return data


def _with_alias(metadata: dict[str, Any], alias: str | UnsetType | None) -> dict[str, Any]:
    if alias is None:
        metadata.pop("user_alias", None)
    elif not isinstance(alias, UnsetType):
        metadata["user_alias"] = alias
    return metadata


class UserRoutes(RecordRoutes[UserRow]):
    kind = "user"

    def __init__(self, state: AdminState) -> None:
        super().__init__(state)
        # The proxy's spend counted before the last reset of ``litellm-proxy-budget``.
        self._proxy_offset = [0.0]

    @property
    def records(self) -> Mapping[str, UserRow]:
        return self.state.directory.users

    async def put(self, row: UserRow) -> None:
        await self.state.directory.put_user(row)

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, NewUser)
        check_duration(body.budget_duration, "budget_duration")
        check_guardrails(self.state, body.guardrails)
        directory = self.state.directory
        user_id = self.new_id(body.user_id)
        teams = list(body.teams or [])
        if body.team_id is not None and body.team_id not in teams:
            teams.append(body.team_id)
        for team_id in teams:
            if team_id not in directory.teams:
                raise InvalidRequest(f"team {team_id!r} does not exist", param="teams")
        now = self.state.clock.time()
        expires = None if body.duration is None else expiry(body.duration, now)
        models = list(body.models or [])
        row = UserRow(
            user_id=user_id,
            user_email=body.user_email,
            user_role=body.user_role,
            max_budget=body.max_budget,
            budget_duration=body.budget_duration,
            models=models,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            metadata=_with_alias(dict(body.metadata or {}), body.user_alias),
            created_at=now,
        )
        await self.put(row)
        if body.spend:
            await self._set_spend(row, body.spend)
        for team_id in teams:
            team = directory.teams[team_id]
            if not is_member(team.members, user_id):
                member = {"user_id": user_id, "user_email": body.user_email, "role": "user"}
                await directory.put_team(replace(team, members=[*team.members, member]))
        result = user_object(self.state, row)
        result["teams"] = teams
        if body.auto_create_key:
            secret = new_secret()
            key = KeyRow(
                token_hash=hash_key(secret),
                key_alias=body.key_alias,
                key_name=masked(secret),
                user_id=user_id,
                team_id=body.team_id,
                models=models,
                metadata=merge_into({}, body),
                expires=expires,
                created_at=now,
                created_by=caller.created_by,
            )
            await directory.put_key(key)
            register_model_limits(directory.ledger, key)
            result.update(
                key=secret,
                token=key.token_hash,
                key_name=key.key_name,
                expires=iso(expires),
                team_id=body.team_id,
            )
        return json_response(result)

    async def _set_spend(self, row: UserRow, spend: float) -> None:
        directory = self.state.directory
        account = user_account(row.user_id)
        reset_at = directory.ledger.account(account).budget_reset_at
        directory.ledger.set_account(
            account,
            Limits(
                max_budget=row.max_budget,
                rpm_limit=row.rpm_limit,
                tpm_limit=row.tpm_limit,
                max_parallel_requests=row.max_parallel_requests,
                budget_duration=row.budget_duration,
            ),
            spend=spend,
            budget_reset_at=reset_at,
        )
        await self.state.store.apply_flush([(account, spend, reset_at)], [])

    def _find_user(self, user_id: str | None, email: str | UnsetType | None) -> UserRow:
        if user_id is not None:
            return self.find(user_id)
        if isinstance(email, str):
            for user in self.records.values():
                if user.user_email == email:
                    return user
            raise NotFound(f"no user with email {email!r}", param="user_email", code="not_found")
        raise InvalidRequest("give the user as user_id or user_email", param="user_id")

    async def update(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, UpdateUser)
        if body.user_id == PROXY_BUDGET_USER and body.user_id not in self.records:
            return await self._reset_proxy_spend(body)
        current = self._find_user(body.user_id, body.user_email)
        changes = set_fields(body, skip=("user_id", "user_alias", "spend"))
        changes["metadata"] = _with_alias(
            dict(changes.get("metadata", current.metadata)), body.user_alias
        )
        row = await self.save(caller, replace(current, **changes))
        if not isinstance(body.spend, UnsetType):
            await self._set_spend(row, body.spend or 0.0)
        return json_response({"user_id": row.user_id, "data": user_object(self.state, row)})

    async def _reset_proxy_spend(self, body: UpdateUser) -> Response:
        """LiteLLM's ``litellm-proxy-budget`` user is the whole proxy's spend: only its
        spend may be set here (to move the point the proxy's spend is counted from)."""
        fields = {f for f in body.__struct_fields__ if getattr(body, f) is not UNSET}
        if fields - {"user_id", "spend"}:
            raise InvalidRequest(
                f"{PROXY_BUDGET_USER!r} is the proxy's total spend: only spend may be set",
                param=sorted(fields - {"user_id", "spend"})[0],
            )
        await self.state.flusher.flush()
        total = await total_spend(self.state.store)
        spend = body.spend if isinstance(body.spend, float | int) else 0.0
        self._proxy_offset[0] = total - spend
        return json_response({"user_id": PROXY_BUDGET_USER, "data": await self._proxy_user()})

    async def _proxy_user(self) -> dict[str, Any]:
        await self.state.flusher.flush()
        spend = await total_spend(self.state.store) - self._proxy_offset[0]
        return {"user_id": PROXY_BUDGET_USER, "spend": max(spend, 0.0), "max_budget": None}

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
        caller = authorize(self.state, request, Action.USER_READ, allow_self=True)
        check_query(request, ("user_id",))
        user_id = query_str(request, "user_id")
        if caller.self_only:
            own = caller.key.user_id
            caller.check_self(own is not None and user_id in (None, own), "user")
            user_id = own
        if user_id is None:
            raise InvalidRequest("give the user as ?user_id=", param="user_id")
        if user_id == PROXY_BUDGET_USER and user_id not in self.records:
            info = await self._proxy_user()
            return json_response({"user_id": user_id, "user_info": info, "keys": [], "teams": []})
        row = self.find(user_id)
        directory = self.state.directory
        keys = [
            key_object(self.state, k)
            for k in directory.keys.values()
            if k.user_id == user_id and (not caller.self_only or k is caller.key)
        ]
        teams = []
        for team in directory.teams.values():
            if is_member(team.members, user_id):
                shown = team_object(self.state, team)
                shown["team_memberships"] = [membership(self.state, team, user_id)]
                teams.append(shown)
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
