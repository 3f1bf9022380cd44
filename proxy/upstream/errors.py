"""The one error mapper: an upstream's error reply becomes the contract's exception.

Every provider goes through ``to_error``: its dialect reads the body into a ``Fault`` and
this keeps the upstream's status for 4xx (429 stays 429 and retryable for the router, with
its ``retry-after``), answers 5xx with 502 naming the real status (``upstream_status`` keeps
it for the router), honours a dialect's ``answer_status`` (Anthropic's 529 → a retryable
503), and scrubs every secret of the deployment out of the message.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..dialects.base import Fault
from ..dialects.common import upstream_failure
from ..errors import TollwayError, UpstreamStatusError

_MAX_MESSAGE = 2000


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def to_error(
    fault: Fault, secrets: Iterable[str | None], retry_after: str | None = None
) -> UpstreamStatusError:
    message = scrub(fault.message[:_MAX_MESSAGE], secrets)
    status = fault.status
    if fault.answer_status is not None:
        return UpstreamStatusError(
            fault.answer_status,
            message,
            type=fault.type or "upstream_error",
            code=fault.code,
            retry_after=retry_after,
            upstream_status=fault.answer_status,
        )
    if status >= 500:
        return upstream_failure(status, message, upstream_status=status)
    return UpstreamStatusError(
        status,
        message,
        type=fault.type,
        param=fault.param,
        code=fault.code,
        retry_after=retry_after,
    )


def scrubbed(exc: TollwayError, secrets: Iterable[str | None]) -> TollwayError:
    """``exc`` with every secret taken out of its message (in place; returned for raising)."""
    message = scrub(exc.message, secrets)
    if message != exc.message:
        exc.message = message
        exc.args = (message,)
    return exc
