"""Gemini's ``google.rpc`` error (``{"error": {"code", "message", "status", "details"}}``)
as a ``Fault``, and the contract error a stream raises when one arrives in-band."""

from __future__ import annotations

import contextlib
from typing import Any

from ...errors import UpstreamStatusError
from ..base import Fault
from ..common import error_type, loads_object, relayed_error

# The longest upstream message relayed to the client.
_MAX_MESSAGE = 2000


def fault(status: int, body: bytes) -> Fault:
    """An error reply (HTTP ``status``, ``body``) as a ``Fault``.

    ``status`` becomes the body's ``code`` when it has one, and 401 for an invalid key
    (a 400 ``INVALID_ARGUMENT`` to Gemini); ``code`` is Gemini's ``status`` word
    (``RESOURCE_EXHAUSTED`` …) or ``API_KEY_INVALID``; ``type`` is the contract's type for a
    4xx status (the engine's error mapper keeps it; ``contract_error`` builds exactly the old
    exception). A body that is not Gemini's error shape becomes the message.
    """
    decoded = loads_object(body) or {}
    error = decoded.get("error")
    if not isinstance(error, dict):
        error = {"message": body.decode("utf-8", "replace")[:500] if body else ""}
    return error_fault(error, status)


def error_fault(error: dict[str, Any], status: int) -> Fault:
    """Gemini's ``error`` object as a ``Fault``; ``status`` is used when it has no code."""
    if isinstance(error.get("code"), int):
        status = error["code"]
    message = str(error.get("message") or f"the upstream returned HTTP {status}")[:_MAX_MESSAGE]
    code = error.get("status")
    retry_after = None
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        # An invalid key is a 400 INVALID_ARGUMENT to Gemini; to the client it is what it is.
        if detail.get("reason") == "API_KEY_INVALID":
            status, code = 401, "API_KEY_INVALID"
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                retry_after = str(max(1, round(float(delay[:-1]))))
    return Fault(
        status=status,
        message=message,
        type=error_type(status) if status < 500 else None,
        code=str(code) if code else None,
        retry_after=retry_after,
    )


def contract_error(fault: Fault) -> UpstreamStatusError:
    """The contract's exception for a Gemini ``Fault``, with the delay it asks for."""
    return relayed_error(fault, fault.retry_after)


def in_band_error(error: dict[str, Any]) -> UpstreamStatusError:
    """The contract error for an ``error`` event mid-stream (the HTTP status was 200, so
    a code-less error counts as a 500). Not scrubbed: the engine scrubs what it raises."""
    return contract_error(error_fault(error, 500))
