"""Health: ``/health`` (live check of every deployment) and ``/health/readiness``.

``/health`` sends each deployment a minimal request (one token). It costs money, so it is
opt-in: it only runs when an operator calls it with the master key, never in the background,
and at most once per ``MIN_INTERVAL_S`` (callers in between get the last result; concurrent
callers share one sweep). Wildcard groups and auto-routers are not checkable (no concrete
model) and are listed as skipped.

``/health/readiness`` needs no key and does no I/O: the gateway is ready once started; the
body says, per model group, whether at least one deployment is usable (not cooling down).
``/health/readiness/details`` (master key) adds LiteLLM's diagnostics: version, cache type,
callbacks, log level.
A cooling group does not make the replica unready — every replica shares the same upstreams,
so taking pods out of service would only turn a partial outage into a total one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .auth import Authenticator, Role
from .config import Config
from .dialects.openai import parse
from .errors import PermissionDenied, TollwayError
from .request import Kind
from .routing import Router
from .stats import MetricsSource
from .upstream.deployment import AUTO_ROUTER, Deployment
from .upstream.engine import Engine

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class HealthSource(MetricsSource, Protocol):
    """What the health and metrics routes read (the gateway's state provides it)."""

    @property
    def auth(self) -> Authenticator: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def ready(self) -> bool: ...
    @property
    def config(self) -> Config: ...


MIN_INTERVAL_S = 10.0
CHECK_TIMEOUT_S = 10.0
_CHAT_PING = b'{"model":"x","messages":[{"role":"user","content":"ping"}],"max_tokens":1}'
_EMBED_PING = b'{"model":"x","input":"ping"}'


class HealthChecker:
    def __init__(
        self,
        router: Router,
        engine: Engine,
        *,
        clock: Any = time.monotonic,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self._router = router
        self._engine = engine
        self._clock = clock
        self._min_interval = min_interval_s
        self._last: dict[str, Any] | None = None
        self._last_at = -float("inf")
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self.sweeps = 0

    async def check(self) -> dict[str, Any]:
        if self._running is not None:
            return await asyncio.shield(self._running)
        if self._last is not None and self._clock() - self._last_at < self._min_interval:
            return {**self._last, "cached": True}
        self._running = asyncio.get_running_loop().create_task(self._sweep())
        try:
            result = await asyncio.shield(self._running)
        finally:
            self._running = None
        self._last, self._last_at = result, self._clock()
        return result

    async def _sweep(self) -> dict[str, Any]:
        self.sweeps += 1
        deployments = self._router.deployments()
        checkable = [d for d in deployments if _checkable(d)]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._check_one(d)) for d in checkable]
        healthy, unhealthy = [], []
        for deployment, task in zip(checkable, tasks, strict=True):
            error = task.result()
            entry = _describe(deployment)
            if error is None:
                healthy.append(entry)
            else:
                unhealthy.append({**entry, "error": error})
        skipped = [_describe(d) for d in deployments if not _checkable(d)]
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "skipped_endpoints": skipped,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
        }

    async def _check_one(self, deployment: Deployment) -> str | None:
        embedding = deployment.info.mode == "embedding"
        kind = Kind.EMBEDDING if embedding else Kind.CHAT
        request = parse(kind, _EMBED_PING if embedding else _CHAT_PING)
        timeout = min(deployment.deadlines.read, CHECK_TIMEOUT_S)
        try:
            async with asyncio.timeout(timeout):
                reply = await self._engine.send(request, deployment, deployment.upstream_model)
        except TimeoutError:
            return f"no answer within {timeout:g}s"
        except TollwayError as exc:
            return f"{exc.status}: {exc.message}"[:500]
        if reply.stream is not None:
            await reply.stream.aclose()
        return None


def _checkable(deployment: Deployment) -> bool:
    return deployment.provider != AUTO_ROUTER and deployment.upstream_model != "*"


def _describe(deployment: Deployment) -> dict[str, Any]:
    return {
        "model_name": deployment.model_name,
        "model": deployment.label,
        "model_id": deployment.id,
    }


def readiness(router: Router, started: bool) -> tuple[int, dict[str, Any]]:
    now = time.monotonic()
    groups: dict[str, Any] = {}
    unusable: list[str] = []
    for name, members in router.groups().items():
        usable = sum(1 for d in members if not router.state(d).cooling(now))
        groups[name] = {"deployments": len(members), "usable": usable}
        if not usable:
            unusable.append(name)
    body = {
        "status": "ready" if started else "not ready",
        "models": len(router.model_names()),
        "deployments": len(router.deployments()),
        "all_model_groups_usable": not unusable,
        "unusable_model_groups": unusable,
        "model_groups": groups,
    }
    return (200 if started else 503), body


def readiness_details(config: Config, started: bool) -> dict[str, Any]:
    """LiteLLM's readiness diagnostics (``litellm_version`` is the gateway's version, under
    the name LiteLLM's clients read), from the configuration only: no I/O."""
    settings = config.litellm_settings
    cache: Any = None
    if settings.cache:
        cache = (settings.cache_params or {}).get("type") or "local"
    level = logging.getLogger("tollway").getEffectiveLevel()
    return {
        "status": "healthy" if started else "unhealthy",
        "db": "connected" if started else "not connected",
        "cache": cache,
        "litellm_version": __version__,
        "tollway_version": __version__,
        "success_callbacks": [*settings.success_callback, *settings.callbacks],
        "log_level": logging.getLevelName(level),
        "is_detailed_debug": level <= logging.DEBUG,
    }


def health_routes(state: HealthSource) -> list[Route]:
    checker = HealthChecker(state.router, state.engine)

    async def health(request: Request) -> Response:
        principal = state.auth.authenticate_headers(request.headers)
        if principal.role is not Role.MASTER:
            raise PermissionDenied("/health sends upstream requests; it needs the master key")
        return _json(await checker.check())

    async def ready(request: Request) -> Response:
        status, body = readiness(state.router, state.ready)
        return _json(body, status)

    async def ready_details(request: Request) -> Response:
        principal = state.auth.authenticate_headers(request.headers)
        if principal.role is not Role.MASTER:
            raise PermissionDenied("/health/readiness/details needs the master key")
        status, body = readiness(state.router, state.ready)
        return _json({**body, **readiness_details(state.config, state.ready)}, status)

    registry: CollectorRegistry | None = None

    async def metrics(request: Request) -> Response:
        nonlocal registry
        if state.config.general_settings.require_auth_for_metrics_endpoint:
            principal = state.auth.authenticate_headers(request.headers)
            if principal.role is not Role.MASTER:
                raise PermissionDenied("/metrics needs the master key")
        # Built on the first scrape: a gateway nobody scrapes never loads prometheus_client.
        from .metrics import CONTENT_TYPE, registry_for, render

        if registry is None:
            registry = registry_for(state)
        return Response(render(registry), media_type=CONTENT_TYPE)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/readiness", ready, methods=["GET"]),
        Route("/health/readiness/details", ready_details, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/metrics/", metrics, methods=["GET"]),
    ]


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
