"""How an exception becomes a response on the framework (Starlette) routes: the one place."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound, TollwayError

log = logging.getLogger("tollway")


def error_response(exc: TollwayError) -> Response:
    """The one place an exception becomes a response on the framework routes."""
    return Response(
        exc.body(), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


async def tollway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TollwayError)
    return error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"no route {request.url.path}", code="not_found"))
    if exc.status_code == 405:
        return error_response(method_not_allowed())
    err = TollwayError(str(exc.detail))
    err.status = exc.status_code
    return error_response(err)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return error_response(TollwayError("internal error"))


def method_not_allowed() -> TollwayError:
    err = TollwayError("method not allowed", code="method_not_allowed")
    err.status = 405
    err.type = "invalid_request_error"
    return err
