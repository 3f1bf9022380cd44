"""``/cache/ping``, ``/cache/delete`` and ``/cache/flushall`` (LiteLLM's admin cache routes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Principal, Role
from ..errors import InvalidRequest, NotFound, PermissionDenied
from .stage import Cache


class DeleteKeys(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[str]


def cache_routes(
    cache: Cache | None, authenticate: Callable[[Mapping[str, str]], Principal]
) -> list[Route]:
    def master(request: Request) -> None:
        if authenticate(request.headers).role is not Role.MASTER:
            raise PermissionDenied("the cache admin routes need the master key")

    def configured() -> Cache:
        if cache is None:
            raise NotFound("no cache is configured (litellm_settings.cache)", code="no_cache")
        return cache

    async def ping(request: Request) -> Response:
        master(request)
        active = configured()
        healthy = await active.store.ping()
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "cache_type": active.settings.type,
            **active.counts,
        }
        return _json(body, 200 if healthy else 503)

    async def delete(request: Request) -> Response:
        master(request)
        active = configured()
        try:
            body = msgspec.json.decode(await request.body() or b"{}", type=DeleteKeys)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"invalid request body: {exc}", param="keys") from None
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
        deleted = await active.store.delete(body.keys)
        return _json({"status": "success", "deleted": deleted})

    async def flushall(request: Request) -> Response:
        master(request)
        active = configured()
        cleared = await active.store.clear(f"{active.settings.namespace}:")
        return _json({"status": "success", "deleted": cleared})

    return [
        Route("/cache/ping", ping, methods=["GET"]),
        Route("/cache/delete", delete, methods=["POST"]),
        Route("/cache/flushall", flushall, methods=["POST"]),
    ]


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
