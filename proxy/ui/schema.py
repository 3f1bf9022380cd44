"""The bodies of the UI's own routes (they appear in the OpenAPI document like any other)."""

from __future__ import annotations

import msgspec


class Login(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Log in with ``UI_USERNAME`` + ``UI_PASSWORD``, or with a key alone as ``password``
    (the master key, or a management / read-only key: a view confined to its team)."""

    password: str
    username: str | None = None


class SessionInfo(msgspec.Struct, kw_only=True):
    """The logged-in session; ``csrf_token`` goes in ``x-csrf-token`` on every UI call."""

    user: str
    role: str
    team_id: str | None
    csrf_token: str
    expires: float
