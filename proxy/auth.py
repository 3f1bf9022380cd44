"""The authenticate stage: who is calling, from the ``Authorization`` or ``x-api-key`` header.

Keys are never kept or compared in the clear: the presented key is hashed (SHA-256) and the
master key's hash is compared in constant time. With no master key configured the gateway
is open, which the CLI only allows on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import enum

import msgspec

from .errors import AuthenticationFailed

MAX_KEY_LENGTH = 512


class Role(enum.Enum):
    ANONYMOUS = "anonymous"
    MASTER = "master"


class Principal(msgspec.Struct, frozen=True):
    role: Role
    key_hash: str | None = None


ANONYMOUS = Principal(Role.ANONYMOUS)
_MISSING = "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
_INVALID = "invalid API key"


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
    if not raw or not raw.isascii() or any(c < 0x21 or c == 0x7F for c in raw):
        raise AuthenticationFailed(_INVALID)
    return raw.decode("ascii")


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master_hash = hash_key(master_key).encode() if master_key else None

    @property
    def open(self) -> bool:
        return self._master_hash is None

    def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> Principal:
        key = presented_key(authorization, api_key)
        if self._master_hash is None:
            return ANONYMOUS
        if key is None:
            raise AuthenticationFailed(_MISSING)
        digest = hash_key(key)
        if hmac.compare_digest(digest.encode(), self._master_hash):
            return Principal(Role.MASTER, digest)
        raise AuthenticationFailed(_INVALID)
