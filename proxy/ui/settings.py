"""The UI's options, read from the environment (LiteLLM's ``UI_USERNAME``/``UI_PASSWORD``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import msgspec

DEFAULT_SESSION_S = 86400
DEFAULT_USERNAME = "admin"


class UiSettings(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool
    off_reason: str = ""
    username: str = DEFAULT_USERNAME
    password: str = ""
    session_s: int = DEFAULT_SESSION_S
    # Derived from the master key: sessions die when the master key changes.
    secret: bytes = b""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], master_key: str | None) -> UiSettings:
        if not master_key:
            return cls(
                enabled=False,
                off_reason="no master key configured (set TOLLWAY_MASTER_KEY to turn it on)",
            )
        if environ.get("TOLLWAY_UI", "on").strip().lower() in ("0", "false", "no", "off"):
            return cls(enabled=False, off_reason="turned off by TOLLWAY_UI")
        raw = environ.get("TOLLWAY_UI_SESSION_S", "").strip()
        try:
            session_s = int(raw) if raw else DEFAULT_SESSION_S
        except ValueError:
            raise ValueError(f"TOLLWAY_UI_SESSION_S must be an integer, got {raw!r}") from None
        if session_s <= 0:
            raise ValueError("TOLLWAY_UI_SESSION_S must be positive")
        secret = hmac.new(master_key.encode(), b"tollway-ui-session-v1", hashlib.sha256).digest()
        return cls(
            enabled=True,
            username=environ.get("UI_USERNAME") or DEFAULT_USERNAME,
            password=environ.get("UI_PASSWORD") or master_key,
            session_s=session_s,
            secret=secret,
        )
