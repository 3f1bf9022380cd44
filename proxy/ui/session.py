"""UI sessions: an encrypted, expiring cookie, and the layer that turns it into a key.

The cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS) holds an AES-GCM sealed
``Session``: who logged in, a CSRF token, the expiry, and, for a management key's session,
that key (never readable by the page or anyone without the master key). Being stateless,
a session works across worker processes; logout also revokes its id in this process.

``SessionAuth`` wraps the web app (never the inference path): a request that carries the
cookie *and* the matching ``x-csrf-token`` header, from the same origin, and no key of its
own, gets the session's key as ``Authorization`` — so the UI's calls pass through exactly
the admin guard that curl's do. Without the header the cookie is ignored (the guard then
answers 401), which is the CSRF protection: another origin can make the browser send the
cookie but can neither read the token nor set the header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "tollway_ui"
CSRF_HEADER = "x-csrf-token"
_AAD = b"tollway-ui-session"
_MAX_COOKIE = 4096


class Session(msgspec.Struct, frozen=True, kw_only=True):
    sid: str
    user: str
    role: str  # "master" or the key type of the key that logged in
    csrf: str
    expires: float
    key: str | None = None  # a management/read-only key's secret; None for the master
    team_id: str | None = None


class SessionCodec:
    """Seals and opens session cookies; remembers the ids logged out in this process.

    ``cryptography`` is imported with the first cookie, not at start-up (~7 MB resident).
    """

    def __init__(self, secret: bytes, clock: Callable[[], float], master_key: str) -> None:
        self._secret = secret
        self._clock = clock
        self._master_key = master_key
        self._revoked: dict[str, float] = {}

    @functools.cached_property
    def _aead(self) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._secret)

    def new(
        self, *, user: str, role: str, lifetime_s: int, key: str | None, team_id: str | None
    ) -> Session:
        return Session(
            sid=secrets.token_urlsafe(16),
            user=user,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires=self._clock() + lifetime_s,
            key=key,
            team_id=team_id,
        )

    def seal(self, session: Session) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, msgspec.json.encode(session), _AAD)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, cookie: str | None) -> Session | None:
        """The live session in ``cookie``; None when absent, forged, expired or logged out."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return None
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            plain = self._aead.decrypt(raw[:12], raw[12:], _AAD)
            session = msgspec.json.decode(plain, type=Session)
        except (binascii.Error, ValueError, InvalidTag, msgspec.DecodeError):
            return None
        if session.expires <= self._clock() or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = self._clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.sid] = session.expires

    def credential(self, session: Session) -> str:
        return session.key if session.key is not None else self._master_key


def same_origin(headers: Mapping[str, str]) -> bool:
    """False for a request a browser marks as coming from another site or origin."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return bool(origin) and urlsplit(origin).netloc == headers.get("host")


def session_of(codec: SessionCodec, headers: Mapping[str, str]) -> Session | None:
    cookies = cookie_parser(headers.get("cookie", ""))
    return codec.open(cookies.get(COOKIE))


def csrf_ok(session: Session, headers: Mapping[str, str]) -> bool:
    token = headers.get(CSRF_HEADER, "")
    return bool(token) and hmac.compare_digest(token, session.csrf) and same_origin(headers)


class SessionAuth:
    """ASGI layer on the web app: a UI session with its CSRF header becomes the session's key."""

    def __init__(self, app: ASGIApp, codec: SessionCodec) -> None:
        self.app = app
        self.codec = codec

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._authenticated(scope)
        await self.app(scope, receive, send)

    def _authenticated(self, scope: Scope) -> Scope:
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        headers: dict[str, str] = {}
        for name, value in raw:
            if name in (b"cookie", b"x-csrf-token", b"origin", b"host", b"sec-fetch-site"):
                headers[name.decode()] = value.decode("latin-1")
            elif name in (b"authorization", b"x-api-key"):
                return scope  # a key given explicitly is what authenticates
        if CSRF_HEADER not in headers or "cookie" not in headers:
            return scope
        session = session_of(self.codec, headers)
        if session is None or not csrf_ok(session, headers):
            return scope
        bearer = b"Bearer " + self.codec.credential(session).encode()
        new: dict[str, Any] = dict(scope)
        new["headers"] = [*raw, (b"authorization", bearer)]
        return new
