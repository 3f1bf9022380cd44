"""What every admin route shares: the one authorization guard, body decoding, JSON output.

The guard is deny-by-default: a route names the ``Action`` it performs, and only the roles
listed for that action in ``_ALLOWED`` get through. Keys that may administer (``management``
and ``read_only`` key types) are confined to their own team: ``Caller.team_scope`` is that
team, and every route checks the records it touches against it.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from calendar import monthrange
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Protocol, TypeVar

import msgspec
import orjson
from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Authenticator, Principal, Role, hash_key
from ..clock import Clock
from ..directory import Directory
from ..errors import BodyTooLarge, InvalidRequest, NotFound, PermissionDenied
from ..hierarchy import Hierarchy
from ..ledger import parse_duration
from ..pipeline.policy import ModelPolicy
from ..pricing import ModelPrice, PriceTable
from ..routing import Router
from ..server.settings import Settings
from ..store import KeyRow, Store
from ..upstream.deployment import Deployment
from .runtime_models import RuntimeModels

MAX_ADMIN_BODY_BYTES = 1024 * 1024
MAX_PAGE_SIZE = 1000

# Limits a request may set. The upper bounds keep values finite and inside SQLite's INTEGER.
Money = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]


class Flusher(Protocol):
    async def flush(self) -> bool: ...


class GuardrailNames(Protocol):
    @property
    def configured(self) -> Mapping[str, object]: ...


class AdminState(Protocol):
    """The parts of the gateway's state the admin API uses."""

    @property
    def guardrails(self) -> GuardrailNames: ...

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def auth(self) -> Authenticator: ...
    @property
    def directory(self) -> Directory: ...
    @property
    def hierarchy(self) -> Hierarchy: ...
    @property
    def store(self) -> Store: ...
    @property
    def router(self) -> Router: ...
    @property
    def flusher(self) -> Flusher: ...
    @property
    def model_policy(self) -> ModelPolicy: ...
    # Prices for /model/info, and the models stored in the database (None: not enabled).
    @property
    def accounting(self) -> PriceSource: ...
    @property
    def runtime_models(self) -> RuntimeModels | None: ...


class PriceSource(Protocol):
    def price_of(self, deployment: Deployment, upstream_model: str) -> ModelPrice: ...
    @property
    def prices(self) -> PriceTable: ...


def check_guardrails(state: AdminState, names: list[str] | None) -> None:
    """A key or team may only impose guardrails that exist (400 naming the first that does
    not), so no call of theirs fails later for a typo made here."""
    for name in names or ():
        if name not in state.guardrails.configured:
            configured = ", ".join(sorted(state.guardrails.configured)) or "none"
            raise InvalidRequest(
                f"guardrail {name!r} does not exist; configured: {configured}", param="guardrails"
            )


class AdminRoutes:
    """One group of admin routes; its handlers reach the gateway through ``state``."""

    def __init__(self, state: AdminState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        raise NotImplementedError


class Action(enum.Enum):
    KEY_READ = "key:read"
    KEY_WRITE = "key:write"
    TEAM_READ = "team:read"
    TEAM_WRITE = "team:write"
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    SPEND_READ = "spend:read"
    MODEL_READ = "model:read"


_READS = frozenset({Action.KEY_READ, Action.TEAM_READ, Action.SPEND_READ, Action.MODEL_READ})
# key_type -> what that kind of key may do (master may do everything; nothing else may).
_ALLOWED: dict[str | None, frozenset[Action]] = {
    "management": _READS | {Action.KEY_WRITE},
    "read_only": _READS,
}
# How much a key type may do, to stop a key from minting a more powerful one.
KEY_TYPE_RANK: dict[str | None, int] = {
    None: 0,
    "default": 0,
    "llm_api": 0,
    "read_only": 1,
    "management": 2,
}


class Caller(msgspec.Struct, frozen=True):
    """An authorized admin caller. ``team_scope`` None means unrestricted (the master key);
    ``self_only`` marks a plain key reading itself (its key, user, team and spend)."""

    principal: Principal
    team_scope: str | None = None
    self_only: bool = False

    @property
    def is_master(self) -> bool:
        return self.principal.role is Role.MASTER

    @property
    def key(self) -> KeyRow:
        assert self.principal.key is not None
        return self.principal.key

    @property
    def created_by(self) -> str:
        return "master" if self.is_master else self.key.token_hash

    def check_self(self, allowed: bool, what: str) -> None:
        """A self-only caller may read only its own records: 403 otherwise (whether or not
        the other record exists)."""
        if self.self_only and not allowed:
            raise PermissionDenied(f"this key may only read its own {what}", code="self_only")

    def check_team(self, team_id: str | None, what: str) -> None:
        if self.self_only:
            self.check_self(team_id is not None and team_id == self.key.team_id, what)
            return
        if not self.is_master and team_id != self.team_scope:
            raise PermissionDenied(
                f"this key may only act on {what} of its own team", code="team_scope"
            )

    def team_filter(self, team_id: str | None, what: str) -> str | None:
        """The team a list query may cover: a team-scoped caller always gets its own team,
        and naming another one is refused."""
        if self.is_master:
            return team_id
        if team_id is not None:
            self.check_team(team_id, what)
        return self.team_scope


def authorize(
    state: AdminState, request: Request, action: Action, *, allow_self: bool = False
) -> Caller:
    """The admin guard: 403 when the API is disabled, 401 without a valid key, else 403
    unless the caller's role allows ``action``. With ``allow_self`` (the info and spend
    reads) any other key gets a ``self_only`` caller, which the route confines to the key's
    own records, as LiteLLM lets a key read itself."""
    if state.auth.open:
        raise PermissionDenied(
            "admin API disabled: no master key configured", code="admin_disabled"
        )
    principal = state.auth.authenticate_headers(request.headers)
    if principal.role is Role.MASTER:
        return Caller(principal)
    key = principal.key
    if principal.role is not Role.KEY or key is None:
        raise PermissionDenied("admin routes need the master key", code="admin_only")
    allowed = _ALLOWED.get(key.key_type, frozenset())
    if allow_self and (action not in allowed or key.team_id is None):
        return Caller(principal, None, self_only=True)
    if action not in allowed:
        raise PermissionDenied(
            f"a key of type {key.key_type or 'default'!r} may not call {request.url.path}",
            code="admin_only",
        )
    if key.team_id is None:
        raise PermissionDenied(
            "an admin key must belong to a team to use the admin API", code="team_scope"
        )
    return Caller(principal, key.team_id)


# -- request bodies ---------------------------------------------------------------------

T = TypeVar("T")

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


async def read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ADMIN_BODY_BYTES:
            raise BodyTooLarge(f"request body is larger than {MAX_ADMIN_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(request: Request, kind: type[T]) -> T:
    """Decode the JSON body into ``kind``; an empty body is ``{}``. Errors name the field."""
    body = (await read_body(request)).strip() or b"{}"
    return decode(body, kind)


def decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = _param_of(message)
        if param is not None and "unknown field" in message:
            message = f"unknown field {param!r}: it does not exist or may not be set"
        raise InvalidRequest(message, param=param) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


# Update fields stored as a list / a dict: an explicit null empties them.
_LIST_FIELDS = frozenset({"models", "tags"})


def set_fields(body: msgspec.Struct, skip: Collection[str]) -> dict[str, Any]:
    """The fields an update request set (left out ones are ``UNSET``), as a record stores
    them; ``skip`` names the fields the route handles itself."""
    changes: dict[str, Any] = {}
    for field in body.__struct_fields__:
        value = getattr(body, field)
        if field in skip or value is UNSET:
            continue
        if field in _LIST_FIELDS:
            value = list(value or [])
        elif field == "metadata":
            value = dict(value or {})
        elif field == "blocked":
            value = bool(value)
        changes[field] = value
    return changes


def _param_of(message: str) -> str | None:
    for pattern in (_UNKNOWN_FIELD, _MISSING_FIELD, _AT_PATH):
        match = pattern.search(message)
        if match is not None:
            return match.group(1)
    return None


def check_duration(value: str | None, param: str) -> None:
    if value is None:
        return
    try:
        parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc).replace("budget_duration", param), param=param) from None


def expiry(duration: str, now: float, param: str = "duration") -> float:
    """When a key created at ``now`` with ``duration`` ("30d", "1h", "1mo") expires."""
    check_duration(duration, param)
    parsed = parse_duration(duration)
    if parsed.unit == "mo":
        start = datetime.fromtimestamp(now, UTC)
        month0 = start.month - 1 + parsed.count
        year, month0 = start.year + month0 // 12, month0 % 12
        day = min(start.day, monthrange(year, month0 + 1)[1])
        return start.replace(year=year, month=month0 + 1, day=day).timestamp()
    return now + parsed.count * {"s": 1, "m": 60, "h": 3600, "d": 86400}[parsed.unit]


def duration_seconds(duration: str) -> float:
    parsed = parse_duration(duration)
    return parsed.count * {"s": 1, "m": 60, "h": 3600, "d": 86400, "mo": 31 * 86400}[parsed.unit]


# -- query parameters -------------------------------------------------------------------


def check_query(request: Request, known: Collection[str]) -> None:
    """Unknown query parameters are a 400 naming the first: a typo must never widen a
    filter into every row."""
    unknown = sorted(set(request.query_params.keys()) - set(known))
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(known))}",
            param=unknown[0],
        )


def query_str(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


def query_int(
    request: Request, name: str, default: int, *, low: int = 1, high: int = MAX_PAGE_SIZE
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", param=name)
    return value


def query_page(request: Request, size_param: str, default_size: int) -> tuple[int, int]:
    """``?page=`` (from 1) and the page size, read from ``size_param``."""
    page = query_int(request, "page", 1, high=10**9)
    return page, query_int(request, size_param, default_size)


def query_time(request: Request, name: str, *, end: bool = False) -> float | None:
    """A date filter: YYYY-MM-DD (UTC; an end date includes that whole day), ISO 8601, or
    epoch seconds."""
    raw = query_str(request, name)
    if raw is None:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            return moment + 86400 if end else moment
        if re.fullmatch(r"-?\d+(\.\d+)?", raw):
            value = float(raw)
            if math.isfinite(value):
                return value
            raise ValueError(raw)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{name} must be a date (YYYY-MM-DD), an ISO 8601 time or epoch seconds",
            param=name,
        ) from None


# -- lookups and output -----------------------------------------------------------------


def find_key(directory: Directory, key: str, param: str = "key") -> KeyRow:
    """A key record by its secret or by its hash ("token")."""
    row = directory.keys.get(key)
    if row is None and len(key) <= 1024:
        row = directory.keys.get(hash_key(key))
    if row is None:
        raise NotFound("key not found", param=param, code="not_found")
    return row


R = TypeVar("R")


def find_record(records: Mapping[str, R], record_id: str, what: str, param: str) -> R:
    row = records.get(record_id)
    if row is None:
        raise NotFound(f"{what} {record_id!r} not found", param=param, code="not_found")
    return row


def new_record_id(
    records: Mapping[str, object], requested: str | None, what: str, param: str
) -> str:
    """The id of a record being created: the one asked for, if free, else a new UUID."""
    record_id = requested or str(uuid.uuid4())
    if record_id in records:
        raise InvalidRequest(f"{what} {record_id!r} already exists", param=param)
    return record_id


def names_user(member: Any, user_id: str) -> bool:
    """Whether a team's ``members`` entry is ``user_id`` (entries are stored as given)."""
    return isinstance(member, dict) and member.get("user_id") == user_id


def is_member(members: list[Any], user_id: str) -> bool:
    return any(names_user(member, user_id) for member in members)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


_TIME_FIELDS = ("expires", "created_at", "updated_at", "budget_reset_at")


def with_iso_times(data: dict[str, Any]) -> dict[str, Any]:
    for field in _TIME_FIELDS:
        if field in data:
            value = data[field]
            data[field] = iso(value) if isinstance(value, int | float) else value
    return data


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def page_of(rows: list[T], page: int, size: int) -> list[T]:
    return rows[(page - 1) * size : page * size]


def page_count(total: int, size: int) -> int:
    return (total + size - 1) // size
