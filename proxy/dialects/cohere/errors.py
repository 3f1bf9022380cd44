"""Cohere's error reply ``{"id", "message"}`` → ``Fault``."""

from __future__ import annotations

from ..base import Fault
from ..common import error_type, loads_object

# Cohere answers an invalid token with 498: the gateway answers it as a bad key.
_INVALID_TOKEN = 498
# Cohere answers a cancelled request with 499: a failure of the upstream's, as its 502.
_CANCELLED = 499


def cohere_error(status: int, body: bytes) -> Fault:
    """An error reply of Cohere's as a ``Fault``: its ``message`` (else the body's text, else
    the status) and the contract's type for the status."""
    decoded = loads_object(body) or {}
    message = decoded.get("message")
    if not isinstance(message, str):
        message = body.decode("utf-8", "replace")[:500] or f"the upstream returned HTTP {status}"
    if status == _INVALID_TOKEN:
        return Fault(status=status, message=message, type="authentication_error", answer_status=401)
    if status == _CANCELLED:
        # Reported as the 502 it stands for, so the mapper's 5xx path answers it (and the
        # router retries it) exactly like any upstream failure.
        status = 502
    kind = error_type(status) if status < 500 else None
    return Fault(status=status, message=message, type=kind)
