"""The authenticate stage: who is calling, from the ``Authorization`` or ``x-api-key`` header.

Keys are never kept or compared in the clear: the presented key is hashed (SHA-256) and the
master key's hash is compared in constant time. With no master key configured the gateway
is open, which the CLI only allows on a loopback address.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

import msgspec

from .errors import AuthenticationFailed, PermissionDenied
from .store import KeyRow, TeamRow, UserRow

MAX_KEY_LENGTH = 512


class Role(enum.Enum):
    ANONYMOUS = "anonymous"
    MASTER = "master"
    # A virtual key; its ``key_type`` says what it may do (see ``may_infer``/``may_administer``).
    KEY = "key"


# LiteLLM's key types: "llm_api"/"default" call models; "management" calls the admin API,
# confined to its own team; "read_only" may only read the admin API.
INFERENCE_KEY_TYPES = frozenset({None, "default", "llm_api"})
ADMIN_KEY_TYPES = frozenset({"management", "read_only"})


class Principal(msgspec.Struct, frozen=True):
    role: Role
    key_hash: str | None = None
    key: KeyRow | None = None
    team: TeamRow | None = None
    user: UserRow | None = None

    @property
    def may_infer(self) -> bool:
        return self.role is not Role.KEY or (
            self.key is not None and self.key.key_type in INFERENCE_KEY_TYPES
        )

    @property
    def may_administer(self) -> bool:
        return self.role is Role.MASTER or (
            self.key is not None and self.key.key_type in ADMIN_KEY_TYPES
        )


ANONYMOUS = Principal(Role.ANONYMOUS)
_MISSING = "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
_INVALID = "invalid API key"


# A key is visible ASCII: any byte outside 0x21-0x7E (space, control, DEL, non-ASCII) refuses it.
_NOT_KEY_BYTE = re.compile(rb"[^\x21-\x7e]")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """The key in the headers, or None; a malformed header is an authentication error."""
    raw = authorization if authorization is not None else api_key
    if raw is None:
        return None
    if len(raw) > MAX_KEY_LENGTH + 7:
        raise AuthenticationFailed(_INVALID)
    if authorization is not None:
        scheme, _, token = raw.partition(b" ")
        if token and scheme.lower() == b"bearer":
            raw = token
    raw = raw.strip()
    if not raw or _NOT_KEY_BYTE.search(raw):
        raise AuthenticationFailed(_INVALID)
    return raw.decode("ascii")


class Authenticator:
    """Resolves the presented key against the master key and the in-memory key table."""

    def __init__(
        self,
        master_key: str | None,
        keys: Mapping[str, KeyRow] | None = None,
        teams: Mapping[str, TeamRow] | None = None,
        users: Mapping[str, UserRow] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._master_hash = hash_key(master_key).encode() if master_key else None
        self._keys: Mapping[str, KeyRow] = keys if keys is not None else {}
        self._teams: Mapping[str, TeamRow] = teams if teams is not None else {}
        self._users: Mapping[str, UserRow] = users if users is not None else {}
        self._clock = clock

    @property
    def open(self) -> bool:
        return self._master_hash is None

    def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> Principal:
        key = presented_key(authorization, api_key)
        if key is None:
            if self._master_hash is None:
                return ANONYMOUS
            raise AuthenticationFailed(_MISSING)
        digest = hash_key(key)
        # The dict is keyed by a SHA-256 of the secret, so lookup timing reveals nothing
        # usable about the secret itself; the master key is compared in constant time.
        record = self._keys.get(digest)
        if record is not None:
            return self._key_principal(digest, record)
        if self._master_hash is None:
            return ANONYMOUS
        if hmac.compare_digest(digest.encode(), self._master_hash):
            return Principal(Role.MASTER, digest)
        raise AuthenticationFailed(_INVALID)

    def authenticate_headers(self, headers: Mapping[str, str]) -> Principal:
        """``authenticate`` for the framework routes, from decoded request headers."""
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        return self.authenticate(
            None if authorization is None else authorization.encode("latin-1"),
            None if api_key is None else api_key.encode("latin-1"),
        )

    def _key_principal(self, digest: str, record: KeyRow) -> Principal:
        if record.expires is not None and record.expires <= self._clock():
            raise AuthenticationFailed("API key expired", code="expired_key")
        if record.blocked:
            raise PermissionDenied("API key is blocked", code="key_blocked")
        team = self._teams.get(record.team_id) if record.team_id else None
        if team is not None and team.blocked:
            raise PermissionDenied("the key's team is blocked", code="team_blocked")
        user = self._users.get(record.user_id) if record.user_id else None
        return Principal(Role.KEY, digest, record, team, user)
