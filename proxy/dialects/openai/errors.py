"""OpenAI-shaped error bodies (also what most compatible servers send) as a ``Fault``."""

from __future__ import annotations

from typing import Any

import msgspec

from ..base import Fault


class _ErrorEnvelope(msgspec.Struct):
    error: Any = None
    message: Any = None
    detail: Any = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def fault(status: int, body: bytes) -> Fault:
    """``{"error": {message, type, param, code}}``, or a bare ``error``/``message``/``detail``."""
    message, type_, param, code = f"the upstream returned HTTP {status}", None, None, None
    try:
        envelope = _error_decoder.decode(body)
    except msgspec.DecodeError:
        envelope = None
    if envelope is not None:
        err = envelope.error
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            type_ = _short(err.get("type"))
            param = _short(err.get("param"))
            code = _short(err.get("code"))
        elif isinstance(err, str):
            message = err
        elif isinstance(envelope.message, str):
            message = envelope.message
        elif isinstance(envelope.detail, str):
            message = envelope.detail
    return Fault(status=status, message=message, type=type_, param=param, code=code)


def _short(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:200]
