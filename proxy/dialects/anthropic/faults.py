"""Anthropic's errors: an error reply ``{"type": "error", "error": {type, message}}`` as a
``Fault``, and an ``error`` event in the middle of a stream as the contract's exception.

A 529 ``overloaded_error`` answers as a retryable 503, so the router tries elsewhere. Key
scrubbing is the engine's: messages here are the upstream's own.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import TollwayError, UpstreamStatusError
from ..base import Fault
from ..common import envelope_fault

OVERLOADED = 529
_MESSAGE_LIMIT = 2000


def fault(status: int, body: bytes) -> Fault:
    """An Anthropic error reply (any status) as a ``Fault``."""
    if status == OVERLOADED:
        # The message read as for a 5xx (whose default text names HTTP 500), then prefixed.
        found = _parse(500, body)
        return Fault(
            status=status,
            message=f"upstream overloaded (529): {found.message}",
            type="upstream_error",
            code="overloaded_error",
            answer_status=503,
        )
    return _parse(status, body)


def _parse(status: int, body: bytes) -> Fault:
    found = envelope_fault(status, body)
    return msgspec.structs.replace(found, message=found.message[:_MESSAGE_LIMIT])


def stream_error(error: Any) -> TollwayError:
    """The exception for an ``error`` event's ``error`` object, received mid-stream."""
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "api_error")
    message = str(error.get("message") or "the upstream failed mid-stream")
    if kind == "overloaded_error":
        return UpstreamStatusError(503, f"upstream overloaded: {message}", code=kind)
    if kind == "rate_limit_error":
        return UpstreamStatusError(429, message, type=kind, code=kind)
    return UpstreamStatusError(502, f"upstream error: {message}", code=kind)
