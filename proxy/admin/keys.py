"""``/key/*``: virtual keys (generate, update, delete, info, list, regenerate, block, unblock).

A new key is ``sk-`` + 32 random bytes (url-safe base64). Only its SHA-256 is stored; the
secret appears once, in the ``/key/generate`` (or ``/key/regenerate``) response.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import MAX_KEY_LENGTH, hash_key
from ..directory import key_account
from ..errors import InvalidRequest, NotFound, PermissionDenied
from ..ledger import Limits
from ..pipeline.policy import ALL_TEAM_MODELS, allows
from ..store import KeyRow, UserRow
from .common import (
    KEY_TYPE_RANK,
    Action,
    AdminState,
    Caller,
    Count,
    Identifier,
    Money,
    authorize,
    check_guardrails,
    check_query,
    decode_body,
    duration_seconds,
    expiry,
    find_key,
    is_member,
    json_response,
    page_count,
    page_of,
    query_page,
    query_str,
    set_fields,
    with_iso_times,
)
from .key_fields import METADATA_FIELDS, merge_into, register_model_limits, shown
from .records import RecordRoutes

KeyType = Literal["llm_api", "default", "management", "read_only"]


# LiteLLM's per-request cache controls a key may be allowed to use.
CacheControl = Literal["no-cache", "no-store", "ttl", "s-maxage", "namespace"]


ModelBudget = Money | dict[str, Any]


class GenerateKey(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every field of LiteLLM's ``GenerateKeyRequest``: enforced, or stored as given
    (``STORED_ONLY``); anything else is a 400 naming the field."""

    key_alias: str | None = None
    models: list[str] | UnsetType | None = UNSET
    max_budget: Money | None = None
    soft_budget: Money | None = None
    budget_duration: str | None = None
    duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    team_id: Identifier | None = None
    user_id: Identifier | None = None
    metadata: dict[str, Any] | None = None
    guardrails: list[str] | None = None
    allowed_cache_controls: list[CacheControl] | None = None
    tags: list[str] | None = None
    blocked: bool | None = None
    key_type: KeyType | None = None
    key: str | None = None
    spend: Money | None = None
    aliases: dict[str, str] | None = None
    model_max_budget: dict[str, ModelBudget] | None = None
    model_rpm_limit: dict[str, Count] | None = None
    model_tpm_limit: dict[str, Count] | None = None
    enforced_params: list[str] | None = None
    budget_id: Identifier | None = None
    config: dict[str, Any] | None = None
    permissions: dict[str, Any] | None = None
    # Stored as given (README: "stored-only key fields").
    organization_id: str | None = None
    project_id: str | None = None
    agent_id: str | None = None
    object_permission: dict[str, Any] | None = None
    prompts: list[str] | None = None
    policies: list[str] | None = None
    allowed_routes: list[str] | None = None
    allowed_passthrough_routes: list[str] | None = None
    allowed_vector_store_indexes: list[Any] | None = None
    access_group_ids: list[str] | None = None
    rpm_limit_type: str | None = None
    tpm_limit_type: str | None = None
    budget_limits: list[dict[str, Any]] | None = None
    budget_fallbacks: dict[str, list[str]] | None = None
    mcp_rpm_limit: dict[str, int] | None = None
    tag_rpm_limit: dict[str, int] | None = None
    router_settings: dict[str, Any] | None = None
    auto_rotate: bool | None = None
    rotation_interval: str | None = None
    send_invite_email: bool | None = None
    disable_global_guardrails: bool | None = None


class UpdateKey(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: str
    key_alias: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    max_budget: Money | UnsetType | None = UNSET
    soft_budget: Money | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    team_id: Identifier | UnsetType | None = UNSET
    user_id: Identifier | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    guardrails: list[str] | UnsetType | None = UNSET
    allowed_cache_controls: list[CacheControl] | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    key_type: KeyType | UnsetType | None = UNSET
    spend: Money | UnsetType | None = UNSET
    aliases: dict[str, str] | UnsetType | None = UNSET
    model_max_budget: dict[str, ModelBudget] | UnsetType | None = UNSET
    model_rpm_limit: dict[str, Count] | UnsetType | None = UNSET
    model_tpm_limit: dict[str, Count] | UnsetType | None = UNSET
    enforced_params: list[str] | UnsetType | None = UNSET
    budget_id: Identifier | UnsetType | None = UNSET
    config: dict[str, Any] | UnsetType | None = UNSET
    permissions: dict[str, Any] | UnsetType | None = UNSET
    # Stored as given (README: "stored-only key fields").
    organization_id: str | UnsetType | None = UNSET
    project_id: str | UnsetType | None = UNSET
    agent_id: str | UnsetType | None = UNSET
    object_permission: dict[str, Any] | UnsetType | None = UNSET
    prompts: list[str] | UnsetType | None = UNSET
    policies: list[str] | UnsetType | None = UNSET
    allowed_routes: list[str] | UnsetType | None = UNSET
    allowed_passthrough_routes: list[str] | UnsetType | None = UNSET
    allowed_vector_store_indexes: list[Any] | UnsetType | None = UNSET
    access_group_ids: list[str] | UnsetType | None = UNSET
    rpm_limit_type: str | UnsetType | None = UNSET
    tpm_limit_type: str | UnsetType | None = UNSET
    budget_limits: list[dict[str, Any]] | UnsetType | None = UNSET
    budget_fallbacks: dict[str, list[str]] | UnsetType | None = UNSET
    mcp_rpm_limit: dict[str, int] | UnsetType | None = UNSET
    tag_rpm_limit: dict[str, int] | UnsetType | None = UNSET
    router_settings: dict[str, Any] | UnsetType | None = UNSET
    auto_rotate: bool | UnsetType | None = UNSET
    rotation_interval: str | UnsetType | None = UNSET
    send_invite_email: bool | UnsetType | None = UNSET
    disable_global_guardrails: bool | UnsetType | None = UNSET


class KeyRef(msgspec.Struct, forbid_unknown_fields=True):
    key: str


class DeleteKeys(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    keys: list[str] = msgspec.field(default_factory=list)
    key_aliases: list[str] = msgspec.field(default_factory=list)


class RegenerateKey(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: str | None = None
    new_key: str | None = None


def new_secret() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def masked(secret: str) -> str:
    return "sk-..." + secret[-4:]


def key_object(state: AdminState, row: KeyRow) -> dict[str, Any]:
    """A key record as admin responses show it: the hash as ``token``, never the secret."""
    data = state.directory.with_live_spend(row)
    data["token"] = data.pop("token_hash")
    data.update(shown(row.metadata))
    return with_iso_times(data)


class KeyRoutes(RecordRoutes[KeyRow]):
    kind = "key"
    create_path = "generate"

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            Route("/key/regenerate", self.regenerate, methods=["POST"]),
            Route("/key/{key}/regenerate", self.regenerate, methods=["POST"]),
            Route("/key/block", self.block, methods=["POST"]),
            Route("/key/unblock", self.unblock, methods=["POST"]),
        ]

    @property
    def records(self) -> Mapping[str, KeyRow]:
        return self.state.directory.keys

    def find(self, record_id: str, param: str | None = None) -> KeyRow:
        return find_key(self.state.directory, record_id, param or "key")

    async def put(self, row: KeyRow) -> None:
        await self.state.directory.put_key(row)

    # -- checks ---------------------------------------------------------------------------

    def validate(self, caller: Caller, row: KeyRow, *, new_user: bool = False) -> None:
        """Checks on a key about to be written; ``new_user``: its user may not exist yet
        (``/key/generate`` creates it once everything else has passed)."""
        super().validate(caller, row)
        directory = self.state.directory
        team = None
        if row.team_id is not None:
            team = directory.teams.get(row.team_id)
            if team is None:
                raise InvalidRequest(f"team_id {row.team_id!r} does not exist", param="team_id")
        if row.user_id is not None and row.user_id not in directory.users and not new_user:
            raise InvalidRequest(f"user_id {row.user_id!r} does not exist", param="user_id")
        if team is not None and team.models and row.models:
            groups = self.state.model_policy.groups
            outside = sorted(
                m for m in row.models if m != ALL_TEAM_MODELS and not allows(team.models, m, groups)
            )
            if outside:
                raise InvalidRequest(
                    f"models {outside} are not allowed for team {team.team_id!r}",
                    param="models",
                )
        if not caller.is_master:
            caller.check_team(row.team_id, "keys")
            _not_more_powerful(caller.key, row)
            if row.user_id is not None and (
                team is None or not is_member(team.members, row.user_id)
            ):
                raise PermissionDenied(
                    "this key may only assign keys to members of its team", code="team_scope"
                )

    def _visible(self, caller: Caller, row: KeyRow) -> KeyRow:
        caller.check_team(row.team_id, "keys")
        return row

    # -- routes ---------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_WRITE)
        body = await decode_body(request, GenerateKey)
        now = self.state.clock.time()
        secret = body.key if body.key is not None else new_secret()
        token_hash = self._check_secret(secret, "key")
        models = body.models
        if isinstance(models, UnsetType):
            models = [] if caller.is_master else list(caller.key.models)
        team_id = body.team_id
        if team_id is None and not caller.is_master:
            team_id = caller.team_scope
        check_guardrails(self.state, body.guardrails)
        if body.spend is not None and not caller.is_master:
            raise PermissionDenied("only the master key may set spend", param="spend")
        metadata = merge_into(dict(body.metadata or {}), body)
        row = KeyRow(
            token_hash=token_hash,
            key_alias=body.key_alias,
            key_name=masked(secret),
            team_id=team_id,
            user_id=body.user_id,
            models=list(models or []),
            max_budget=body.max_budget,
            soft_budget=body.soft_budget,
            budget_duration=body.budget_duration,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_parallel_requests=body.max_parallel_requests,
            metadata=metadata,
            tags=list(body.tags or []),
            blocked=bool(body.blocked),
            key_type=body.key_type,
            expires=None if body.duration is None else expiry(body.duration, now),
            created_at=now,
            created_by=caller.created_by,
        )
        self.validate(caller, row, new_user=True)
        await self._create_missing_user(caller, row)
        await self.save(caller, row)
        if body.spend:
            await self._set_spend(row, body.spend)
        return json_response({**key_object(self.state, row), "key": secret, "token_id": token_hash})

    async def _create_missing_user(self, caller: Caller, row: KeyRow) -> None:
        """A key for a user that does not exist yet creates the user, as LiteLLM does (a
        team-scoped caller only for members of its team)."""
        user_id = row.user_id
        directory = self.state.directory
        if user_id is None or user_id in directory.users:
            return
        team = directory.teams.get(row.team_id) if row.team_id else None
        if not caller.is_master and (team is None or not is_member(team.members, user_id)):
            return  # ``validate`` refuses it
        now = self.state.clock.time()
        await directory.put_user(UserRow(user_id=user_id, created_at=now))

    async def _set_spend(self, row: KeyRow, spend: float) -> None:
        """Set a key's spend (master key only): the ledger's figure, stored at once."""
        directory = self.state.directory
        account = key_account(row.token_hash)
        state = directory.ledger.account(account)
        directory.ledger.set_account(
            account, _limits_of(row), spend=spend, budget_reset_at=state.budget_reset_at
        )
        await self.state.store.apply_flush([(account, spend, state.budget_reset_at)], [])

    async def save(self, caller: Caller, row: KeyRow) -> KeyRow:
        await super().save(caller, row)
        register_model_limits(self.state.directory.ledger, row)
        return row

    def _check_secret(self, secret: str, param: str) -> str:
        if not secret.startswith("sk-") or not 8 <= len(secret) <= MAX_KEY_LENGTH:
            raise InvalidRequest(
                f'{param} must start with "sk-" and be 8 to {MAX_KEY_LENGTH} characters',
                param=param,
            )
        if not secret.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in secret):
            raise InvalidRequest(f"{param} must be printable ASCII without spaces", param=param)
        token_hash = hash_key(secret)
        master = self.state.settings.master_key
        if token_hash in self.state.directory.keys or (
            master is not None and secrets.compare_digest(secret, master)
        ):
            raise InvalidRequest(f"{param} is already in use", param=param)
        return token_hash

    async def update(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_WRITE)
        body = await decode_body(request, UpdateKey)
        current = self._visible(caller, self.find(body.key))
        changes = set_fields(body, skip=("key", "duration", "spend", *METADATA_FIELDS))
        if not isinstance(body.guardrails, UnsetType):
            check_guardrails(self.state, body.guardrails)
        if not isinstance(body.spend, UnsetType) and not caller.is_master:
            raise PermissionDenied("only the master key may set spend", param="spend")
        # These live in the key's metadata, where the stages read them; new metadata keeps them.
        metadata = dict(changes.get("metadata", current.metadata))
        for name in METADATA_FIELDS:
            if name in current.metadata and name not in metadata:
                metadata[name] = current.metadata[name]
        changes["metadata"] = merge_into(metadata, body)
        if not isinstance(body.duration, UnsetType):
            duration = body.duration
            changes["expires"] = (
                None if duration is None else expiry(duration, self.state.clock.time())
            )
        row = await self.save(caller, replace(current, **changes))
        if not isinstance(body.spend, UnsetType):
            await self._set_spend(row, body.spend or 0.0)
        return json_response({"key": row.token_hash, **key_object(self.state, row)})

    async def delete(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_WRITE)
        body = await decode_body(request, DeleteKeys)
        if not body.keys and not body.key_aliases:
            raise InvalidRequest("give the keys to delete in `keys`", param="keys")
        directory = self.state.directory
        rows = [self._visible(caller, self.find(key, "keys")) for key in body.keys]
        for alias in body.key_aliases:
            matches = [r for r in directory.keys.values() if r.key_alias == alias]
            if not matches:
                raise NotFound(
                    f"no key with alias {alias!r}", param="key_aliases", code="not_found"
                )
            rows.extend(self._visible(caller, r) for r in matches)
        # Everything is checked before anything is deleted.
        for row in rows:
            await directory.remove_key(row.token_hash)
        return json_response({"deleted_keys": [*body.keys, *body.key_aliases]})

    async def info(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_READ, allow_self=True)
        check_query(request, ("key",))
        key = query_str(request, "key")
        if key is None:
            if caller.is_master:
                raise InvalidRequest("give the key to look up as ?key=", param="key")
            row = caller.key
        elif caller.self_only:
            # Another key's existence is not revealed: not found and not yours are both 403.
            caller.check_self(_key_hash(key) == caller.key.token_hash, "key")
            row = caller.key
        else:
            row = self._visible(caller, self.find(key))
        return json_response({"key": row.token_hash, "info": key_object(self.state, row)})

    async def list(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_READ)
        page, size = query_page(request, "size", 10)
        team_id = query_str(request, "team_id")
        user_id = query_str(request, "user_id")
        alias = query_str(request, "key_alias")
        full = (query_str(request, "return_full_object") or "").lower() == "true"
        team_id = caller.team_filter(team_id, "keys")
        rows = sorted(
            (
                r
                for r in self.state.directory.keys.values()
                if (team_id is None or r.team_id == team_id)
                and (user_id is None or r.user_id == user_id)
                and (alias is None or r.key_alias == alias)
            ),
            # Stable: keys made in the same instant keep the order they were made in.
            key=lambda r: r.created_at or 0.0,
        )
        chosen = page_of(rows, page, size)
        keys: list[Any] = (
            [key_object(self.state, r) for r in chosen] if full else [r.token_hash for r in chosen]
        )
        return json_response(
            {
                "keys": keys,
                "total_count": len(rows),
                "current_page": page,
                "total_pages": page_count(len(rows), size),
            }
        )

    async def regenerate(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.KEY_WRITE)
        body = await decode_body(request, RegenerateKey)
        key = request.path_params.get("key") or body.key
        if not key:
            raise InvalidRequest("give the key to regenerate in `key`", param="key")
        current = self._visible(caller, self.find(key))
        if not caller.is_master:
            # Regenerating hands out the record's new secret: no more than the caller's rights.
            _not_more_powerful(caller.key, current)
        secret = body.new_key if body.new_key is not None else new_secret()
        token_hash = self._check_secret(secret, "new_key")
        row = replace(current, token_hash=token_hash, key_name=masked(secret))
        await self.state.directory.rekey(current.token_hash, row)
        return json_response({**key_object(self.state, row), "key": secret, "token_id": token_hash})

    async def block(self, request: Request) -> Response:
        return await self._set_blocked(request, True)

    async def unblock(self, request: Request) -> Response:
        return await self._set_blocked(request, False)

    async def _set_blocked(self, request: Request, blocked: bool) -> Response:
        caller = authorize(self.state, request, Action.KEY_WRITE)
        body = await decode_body(request, KeyRef)
        current = self._visible(caller, self.find(body.key))
        row = replace(current, blocked=blocked)
        if not blocked and not caller.is_master:
            _not_more_powerful(caller.key, row)
        await self.put(row)
        return json_response(key_object(self.state, row))


def _key_hash(key: str) -> str:
    """A key given as its secret or as its hash."""
    is_hash = len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    return key if is_hash else hash_key(key[:MAX_KEY_LENGTH])


def _limits_of(row: KeyRow) -> Limits:
    return Limits(
        max_budget=row.max_budget,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        max_parallel_requests=row.max_parallel_requests,
        budget_duration=row.budget_duration,
    )


def _not_more_powerful(creator: KeyRow, row: KeyRow) -> None:
    """A non-master caller may not write a key with more rights than its own key."""

    def deny(field: str, why: str) -> PermissionDenied:
        return PermissionDenied(
            f"{field}: {why} than the calling key's", param=field, code="exceeds_own_rights"
        )

    if KEY_TYPE_RANK.get(row.key_type, 99) > KEY_TYPE_RANK.get(creator.key_type, 0):
        raise deny("key_type", "a more powerful key type")
    if creator.models and (not row.models or not set(row.models) <= set(creator.models)):
        raise deny("models", "models outside")
    limits = ("max_budget", "rpm_limit", "tpm_limit", "max_parallel_requests")
    for field in limits:
        own = getattr(creator, field)
        if own is not None:
            value = getattr(row, field)
            if value is None or value > own:
                raise deny(field, "a higher (or no) limit")
    if creator.max_budget is not None:
        own_period = creator.budget_duration
        period = row.budget_duration
        if own_period is None and period is not None:
            raise deny("budget_duration", "a budget that resets, unlike")
        if (
            own_period is not None
            and period is not None
            and duration_seconds(period) < duration_seconds(own_period)
        ):
            raise deny("budget_duration", "a shorter budget period")
    if creator.expires is not None and (row.expires is None or row.expires > creator.expires):
        raise deny("duration", "a later expiry")
