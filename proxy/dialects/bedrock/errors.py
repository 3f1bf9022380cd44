"""Bedrock's errors: an error reply or stream exception → ``Fault`` → the contract's error.

Bedrock names the error in the ``x-amzn-errortype`` response header (``ThrottlingException:
http://internal.amazon.com/coral/...``), in a body's ``__type``, or in a stream exception's
``:exception-type``; the body is ``{"message": ...}``. The name decides the status: a
``ThrottlingException`` is a retryable 429 whatever HTTP status carried it.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import TollwayError, UpstreamTimeout
from ..base import Fault
from ..common import loads_object, relayed_error

# Bedrock's exception names → the status the gateway answers with. 5xx become 502 for the
# client and, like 429, are retryable for the router.
ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 429,
    "UnrecognizedClientException": 401,
    "InvalidSignatureException": 401,
    "IncompleteSignatureException": 401,
    "MissingAuthenticationTokenException": 401,
    "ExpiredTokenException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ModelErrorException": 500,
    "ModelStreamErrorException": 500,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 503,
}

MODEL_TIMEOUT = "ModelTimeoutException"


def error_kind(error_type: str | None, body: dict[str, Any] | None) -> str:
    """``ThrottlingException`` from ``x-amzn-ErrorType``, ``__type`` or a stream's name."""
    raw = error_type or ""
    if not raw and body is not None:
        raw = str(body.get("__type") or body.get("code") or "")
    raw = raw.split(":", 1)[0].rpartition("#")[2].strip()
    return raw[:1].upper() + raw[1:]


def fault_from(status: int, body: bytes, error_type: str | None) -> Fault:
    """The ``Fault`` for a Bedrock error reply; ``error_type`` is ``x-amzn-errortype``.

    ``status`` of the result is the status Bedrock's error name stands for (the HTTP status
    when the name is unknown), so the contract's usual mapping of a status (4xx kept, 5xx →
    502) gives the old answers; ``code`` is the error name. A ``ModelTimeoutException`` is
    ``type="timeout_error"`` with ``answer_status=504``: the contract's ``UpstreamTimeout``
    (``error_of`` builds exactly the old exception from any of these).
    """
    parsed = loads_object(body)
    kind = error_kind(error_type, parsed)
    message = ""
    if parsed is not None:
        message = str(parsed.get("message") or parsed.get("Message") or "")
    message = (message or f"Bedrock returned HTTP {status}")[:2000]
    if kind == MODEL_TIMEOUT:
        return Fault(
            status=status,
            message=f"Bedrock: {message}",
            type="timeout_error",
            code=kind,
            answer_status=504,
        )
    return Fault(
        status=ERROR_STATUS.get(kind, status),
        message=f"{kind}: {message}" if kind else message,
        code=kind or None,
    )


def error_of(fault: Fault, retry_after: str | None = None) -> TollwayError:
    """The contract's exception for a Bedrock ``Fault`` (its message not scrubbed here).

    4xx keeps the status (429 stays retryable for the router); 5xx becomes a retryable 502.
    """
    if fault.code == MODEL_TIMEOUT:
        return UpstreamTimeout(fault.message)
    return relayed_error(fault, retry_after)


def stream_exception(kind: str, event: str | None, data: bytes) -> TollwayError:
    """The error an ``exception`` or ``error`` message in a ConverseStream ends it with.

    An ``exception`` frame's payload is the error body and ``event`` its
    ``:exception-type``; an ``error`` frame carries its ``:error-code`` header as ``event``
    and its ``:error-message`` header's text as ``data``.
    """
    name = event or "InternalServerException"
    if kind == "error":
        data = orjson.dumps({"message": data.decode("utf-8", "replace")})
    return error_of(fault_from(500, data, name))
