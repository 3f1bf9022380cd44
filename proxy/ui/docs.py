"""``/docs`` (the vendored Swagger UI) and ``/openapi.json``; no key needed, no data shown.

The document is built on first request, from the routes the app serves at that moment
(off the event loop: reading the handlers' code touches files), then kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..openapi import build_spec, route_operations
from .assets import Assets, secured


def docs_routes(assets: Assets, served: Callable[[], Sequence[BaseRoute]]) -> list[Route]:
    spec: list[bytes] = []

    def build() -> bytes:
        return orjson.dumps(build_spec(route_operations(served()), __version__))

    async def docs(request: Request) -> Response:
        """The API docs (Swagger UI over /openapi.json)."""
        return await assets.response("docs.html")

    async def openapi(request: Request) -> Response:
        """This OpenAPI document."""
        if not spec:
            spec.append(await asyncio.to_thread(build))
        return secured(Response(spec[0], media_type="application/json"))

    return [
        Route("/docs", docs, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/ui/static/{path:path}", assets.static, methods=["GET"]),
    ]
