"""The UI's own routes: the page, login / session / logout, and the read-only config.

``/ui`` and ``/ui/static/*`` are public (the login form lives there; they hold no data).
Everything that returns data goes through the admin guard (``authorize``) like any admin
route, or checks the session itself (``/ui/session``, ``/ui/logout``). Each of these routes is
in the OpenAPI document.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admin.common import Action, AdminState, authorize, decode_body, json_response
from ..auth import Role
from ..errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from .assets import Assets, secured
from .schema import Login, SessionInfo
from .session import COOKIE, Session, SessionCodec, csrf_ok, same_origin, session_of
from .settings import UiSettings
from .throttle import LoginThrottle


def session_info(session: Session) -> SessionInfo:
    return SessionInfo(
        user=session.user,
        role=session.role,
        team_id=session.team_id,
        csrf_token=session.csrf,
        expires=session.expires,
    )


_SECRET_WORDS = ("key", "secret", "token", "password", "credential", "authorization", "header")
MASK = "********"


def masked(value: Any, name: str = "") -> Any:
    """``value`` with every secret replaced: strings under a secret-sounding name, anything
    that looks like a key, and the password in a URL."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, name) for v in value]
    if not isinstance(value, str) or not value:
        return value
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS) or value.startswith("sk-"):
        return MASK
    if "://" in value:
        parts = urlsplit(value)
        if parts.password is not None or parts.username is not None:
            host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, "", ""))
    return value


def ui_routes(
    state: AdminState,
    ui: UiSettings,
    codec: SessionCodec,
    config: Callable[[], object],
    assets: Assets,
) -> list[Route]:
    throttle = LoginThrottle(state.clock.time)

    async def page(request: Request) -> Response:
        """The admin UI (a static page; its data comes from the admin API)."""
        return await assets.response("index.html")

    async def login(request: Request) -> Response:
        """Log in to the admin UI: sets the HttpOnly, SameSite=Strict session cookie."""
        if not same_origin(request.headers):
            raise PermissionDenied("login from another origin refused", code="csrf")
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise InvalidRequest("send the login as application/json")
        body = await decode_body(request, Login)
        client = request.client.host if request.client is not None else ""
        throttle.check(client)
        try:
            session = _login(state, ui, codec, body)
        except (AuthenticationFailed, PermissionDenied):
            throttle.failed(client)
            raise
        throttle.succeeded(client)
        response = secured(json_response(msgspec.to_builtins(session_info(session))))
        response.set_cookie(
            COOKIE,
            codec.seal(session),
            max_age=ui.session_s,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def current(request: Request) -> Response:
        """The current UI session and its CSRF token (from the session cookie)."""
        session = session_of(codec, request.headers)
        if session is None or not same_origin(request.headers):
            raise AuthenticationFailed("not logged in", code="no_session")
        return secured(json_response(msgspec.to_builtins(session_info(session))))

    async def logout(request: Request) -> Response:
        """End the UI session (the cookie and x-csrf-token)."""
        session = session_of(codec, request.headers)
        if session is None:
            raise AuthenticationFailed("not logged in", code="no_session")
        if not csrf_ok(session, request.headers):
            raise PermissionDenied("missing or wrong x-csrf-token", code="csrf")
        codec.revoke(session)
        response = secured(json_response({"logged_out": True}))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def show_config(request: Request) -> Response:
        """The running config and settings, every secret masked (master only)."""
        caller = authorize(state, request, Action.MODEL_READ)
        if not caller.is_master:
            raise PermissionDenied("the running config needs the master key", code="admin_only")
        settings = msgspec.to_builtins(state.settings)
        return secured(
            json_response(
                {"config": masked(msgspec.to_builtins(config())), "settings": masked(settings)}
            )
        )

    return [
        Route("/ui", page, methods=["GET"]),
        Route("/ui/", page, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/session", current, methods=["GET"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/config", show_config, methods=["GET"]),
    ]


def _login(state: AdminState, ui: UiSettings, codec: SessionCodec, body: Login) -> Session:
    if body.username:
        user_ok = hmac.compare_digest(body.username.encode(), ui.username.encode())
        password_ok = hmac.compare_digest(body.password.encode(), ui.password.encode())
        if not (user_ok and password_ok):
            raise AuthenticationFailed("wrong username or password", code="bad_login")
        return codec.new(
            user=body.username, role="master", lifetime_s=ui.session_s, key=None, team_id=None
        )
    return _key_session(state, ui, codec, body.password)


def _key_session(state: AdminState, ui: UiSettings, codec: SessionCodec, key: str) -> Session:
    """A session for a key typed into the login form: the master key, or a key whose role
    may use the admin API (confined to its team, as the admin guard confines it)."""
    principal = state.auth.authenticate(b"Bearer " + key.encode("utf-8", "replace"), None)
    if principal.role is Role.MASTER:
        return codec.new(
            user="master key", role="master", lifetime_s=ui.session_s, key=None, team_id=None
        )
    row = principal.key
    if principal.role is not Role.KEY or row is None or not principal.may_administer:
        raise PermissionDenied(
            "this key may not use the admin UI: log in with the master key or a management key",
            code="admin_only",
        )
    if row.team_id is None:
        raise PermissionDenied("an admin key must belong to a team", code="team_scope")
    return codec.new(
        user=row.key_alias or row.key_name or "key",
        role=row.key_type or "management",
        lifetime_s=ui.session_s,
        key=key,
        team_id=row.team_id,
    )


def disabled_routes(reason: str) -> list[Route]:
    async def off(request: Request) -> Response:
        raise PermissionDenied(f"admin UI disabled: {reason}", code="ui_disabled")

    return [
        Route(path, off, methods=["GET", "POST"]) for path in ("/ui", "/ui/", "/ui/{rest:path}")
    ]
