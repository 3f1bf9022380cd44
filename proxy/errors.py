"""Tollway's exception tree; every error a client can see is one of these.

Each class carries its HTTP status, contract ``type`` and extra headers; ``body()`` renders
the contract's ``{"error": {...}}`` shape, and ``proxy.server.web_errors.error_response`` is
the one place that turns any exception into a response. Foreign exceptions are
translated at the boundary where they occur (``raise UpstreamTimeout(...) from exc``).

    TollwayError                      500 internal_error
    ├── InvalidRequest                400 invalid_request_error
    │   ├── BodyTooLarge              413 invalid_request_error
    │   └── GuardrailBlocked          400 guardrail_error
    ├── AuthenticationFailed          401 authentication_error
    ├── PermissionDenied              403 permission_error
    ├── NotFound                      404 not_found_error
    ├── RateLimited                   429 rate_limit_error   (+ retry-after)
    ├── BudgetExceeded                429 budget_exceeded    (+ x-should-retry: false)
    ├── UpstreamError                 502 upstream_error
    │   ├── UpstreamStatusError       the upstream's 4xx status, message and type (a 5xx is
    │   │                             relayed as 502; ``upstream_status`` keeps the real one)
    │   ├── UpstreamUnreachable       502 upstream_error
    │   └── NoDeploymentAvailable     503 upstream_error     (+ retry-after)
    └── UpstreamTimeout               504 timeout_error
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson


class TollwayError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers) if headers else {}

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code if self.code is not None else str(self.status),
                }
            }
        )


class InvalidRequest(TollwayError):
    status = 400
    type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class GuardrailBlocked(InvalidRequest):
    type = "guardrail_error"


class AuthenticationFailed(TollwayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(TollwayError):
    status = 403
    type = "permission_error"


class NotFound(TollwayError):
    status = 404
    type = "not_found_error"
    code = "model_not_found"


class RateLimited(TollwayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, param: str | None = None) -> None:
        super().__init__(message, param=param, headers=_retry_after_header(retry_after))
        self.retry_after = retry_after


class BudgetExceeded(TollwayError):
    status = 429
    type = "budget_exceeded"
    code = "budget_exceeded"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param, headers={"x-should-retry": "false"})


class UpstreamError(TollwayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status that is relayed to the client."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        headers = {"retry-after": retry_after} if retry_after else None
        super().__init__(message, param=param, code=code, headers=headers)
        self.status = status
        self.upstream_status = upstream_status if upstream_status is not None else status
        self.retry_after_s = _seconds(retry_after)
        if type:
            self.type = type

    @property
    def retryable(self) -> bool:
        return self.upstream_status == 429 or self.upstream_status >= 500


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class NoDeploymentAvailable(UpstreamError):
    status = 503
    code = "no_deployment_available"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, headers=_retry_after_header(retry_after))
        self.retry_after = retry_after


class UpstreamTimeout(TollwayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


def _retry_after_header(retry_after: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, rounded up and at least 1."""
    return {"retry-after": str(max(1, math.ceil(retry_after)))}


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (HTTP dates are not worth parsing here)."""
    if not retry_after:
        return None
    try:
        value = float(retry_after)
    except ValueError:
        return None
    return value if value >= 0 else None
