"""Builds the gateway: one ``GatewayState`` and the ASGI app that routes into it.

Inference paths go straight to the raw-ASGI handlers in ``hotpath`` (no framework layer on
the hot path); everything else — health, models, admin — is a Starlette app. Both share the
state object created here; there is no module-level mutable state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote

import msgspec
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import admin_routes
from ..admin.common import decode_body
from ..admin.runtime_models import build_runtime_models
from ..auth import Authenticator, Role
from ..cache.build import build_cache
from ..cache.routes import cache_routes
from ..clock import Clock, SystemClock
from ..config import Config, config_folder, load_config
from ..directory import Directory
from ..endpoints import Endpoints, ModelGroupPath, PathPattern
from ..errors import PermissionDenied, TollwayError
from ..guardrails.registry import build_guardrails
from ..guardrails.routes import guardrail_routes
from ..guardrails.stage import Guardrails
from ..health import health_routes
from ..hierarchy import Hierarchy
from ..ledger import Ledger
from ..ledger.flush import Flusher
from ..observe import prometheus_enabled
from ..observe.alerts import build_alerter
from ..observe.build import call_event
from ..observe.bus import EventBus
from ..observe.sinks import build_sinks
from ..pipeline.accounting import Accounting, RequestIds
from ..pipeline.call import Call
from ..pipeline.formats import (
    AzureFormat,
    BedrockFormat,
    CohereFormat,
    GeminiFormat,
    InboundFormat,
    MessagesFormat,
    ResponsesFormat,
    azure_path,
)
from ..pipeline.policy import ModelPolicy, access_groups
from ..pipeline.respond import PostCall, Responder
from ..pipeline.route import InferenceRoute, Receive, Scope, Send, Stages
from ..pricing import PriceTable
from ..request import Kind
from ..routing import Router, RoutingSettings
from ..routing.dispatch import Dispatcher
from ..stats import Stats
from ..store import SpendLogRow, Store
from ..upstream.engine import Engine
from ..upstream.lean import LeanTransport, transport_kind
from ..upstream.providers import Provider, build_deployment, build_registry
from ..upstream.transport import Transport
from .expect import ExpectGate
from .logs import configure as configure_logging
from .logs import environment_secrets, log_access
from .reload import Reloader
from .settings import Settings, from_environment
from .storage import open_directory
from .trim import Trimmer
from .web_errors import http_error, method_not_allowed, tollway_error, unexpected_error

if TYPE_CHECKING:
    from ..ledger.redis import RedisLedger
    from ..observe.prometheus import PrometheusObserver
    from ..propagation.follow import Source

log = logging.getLogger("tollway")


class GatewayState:
    """Everything a request needs, built once; ``start``/``stop`` run in the lifespan."""

    def __init__(
        self,
        settings: Settings,
        config: Config,
        transport: Transport | None = None,
        clock: Clock | None = None,
    ):
        self.settings = settings
        self.config = config
        self.clock = clock = clock or SystemClock()
        self.ledger: Ledger
        self.shared_ledger: RedisLedger | None = None
        if settings.redis_url:
            # Imported only when configured: without Redis the ledger module is never loaded.
            from ..ledger import redis as shared

            timeout_s = settings.redis_timeout_ms / 1000
            self.ledger = self.shared_ledger = shared.RedisLedger(
                shared.redis_client(settings.redis_url, timeout_s),
                clock.time,
                failure=settings.redis_failure,
                timeout_s=timeout_s,
                lease_s=settings.redis_lease_s,
            )
        else:
            self.ledger = Ledger(clock.time)
        self.directory = Directory(self.ledger)
        # Organizations, end users and reusable budgets (loaded with the directory).
        self.hierarchy = Hierarchy(self.ledger, config.litellm_settings.max_end_user_budget)
        self.auth = Authenticator(
            settings.master_key,
            self.directory.keys,
            self.directory.teams,
            self.directory.users,
            clock=clock.time,
        )
        self.accounting = Accounting(
            self.ledger,
            PriceTable.load(os.environ),
            self._enqueue_spend_log,
            clock=clock.time,
            shared=self.shared_ledger,
            hierarchy=self.hierarchy,
            min_capped_tokens=settings.min_capped_tokens,
        )
        self.request_ids = RequestIds()
        self._store: Store | None = None
        self._propagation: Source | None = None
        self._flusher: Flusher | None = None
        self._early_logs: list[SpendLogRow] = []
        # litellm_settings.custom_provider_map: providers served in-process by a Python class.
        custom: dict[str, Provider] = {}
        if config.litellm_settings.custom_provider_map:
            from ..upstream.custom import load_custom_providers

            custom.update(load_custom_providers(config, config_folder(settings.config)))
        deployments = [
            build_deployment(i, entry, config.router_settings, settings, custom)
            for i, entry in enumerate(config.model_list)
        ]
        self.router = Router(
            deployments,
            config.router_settings.model_group_alias,
            settings=RoutingSettings.from_config(config),
            clock=clock.monotonic,
            wall=clock.time,
            price_of=self.accounting.price_of,
        )
        if transport is None:
            if transport_kind(settings.upstream_client, os.environ) == "lean":
                transport = LeanTransport(pool_size=settings.pool_size)
            else:
                # Imported only here: aiohttp costs about 14 MB resident.
                from ..upstream.aiohttp_transport import AiohttpTransport

                transport = AiohttpTransport(pool_size=settings.pool_size)
        self.transport: Transport = transport
        self.engine = Engine(transport, {**build_registry(), **custom} if custom else None)
        self.dispatch = Dispatcher(self.router, self.engine, self.accounting)
        # /model/new and /credentials: only with store_model_in_db (None otherwise).
        self.runtime_models = build_runtime_models(
            config, settings, self.router, tuple(custom), os.environ, self.accounting.forget_price
        )
        self.model_policy = ModelPolicy(access_groups(config.model_list))
        self.guardrails = Guardrails(
            build_guardrails(
                config.guardrails,
                transport=transport,
                environ=os.environ,
                config_dir=config_folder(settings.config),
            )
        )
        self.cache = build_cache(config, os.environ, clock)
        litellm = config.litellm_settings
        callbacks = [*litellm.callbacks, *litellm.success_callback, *litellm.failure_callback]
        self.events = EventBus(build_sinks(callbacks, os.environ, transport, {"config": config}))
        # general_settings.alerting: Slack / webhook alerts, with their own queue and client.
        self.alerts = build_alerter(config, os.environ, self.directory, self.router, clock)
        # With OpenTelemetry, upstream attempts are recorded and get a W3C traceparent.
        self.dispatch.trace = any(sink.name == "otel" for sink in self.events.sinks)
        # LiteLLM's default: messages and replies are logged unless this is true.
        self.log_messages = not litellm.turn_off_message_logging
        self.stats = Stats()
        # LiteLLM's switch: `prometheus` in the callbacks turns the per-call series on.
        aliases = config.router_settings.model_group_alias or {}
        self.prometheus: PrometheusObserver | None = None
        if prometheus_enabled(config):
            # Imported only when on: without it, prometheus_client waits for a scrape.
            from ..observe.prometheus import PrometheusObserver

            self.prometheus = PrometheusObserver.from_config(
                config, [*self.router.groups(), *aliases]
            )
        self.started_at = int(time.time())
        # Images, audio, rerank, files, batches, pass-through (their client opens on first use).
        self.endpoints = Endpoints(self)
        self.ready = False

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the store is not open")
        return self._store

    @property
    def flusher(self) -> Flusher:
        if self._flusher is None:
            raise RuntimeError("the flusher is not running")
        return self._flusher

    async def start(self) -> None:
        self.events.start()
        if self.alerts is not None:
            self.alerts.start()
        store, self._propagation = await open_directory(self.settings, self.directory)
        self._store = store
        self.hierarchy.attach(store)
        await self.hierarchy.load()
        await self.endpoints.start(store)
        if self.runtime_models is not None:
            # Models stored through /model/new join routing before the first request.
            await self.runtime_models.load(store)
        if self.shared_ledger is not None:
            await self.shared_ledger.start()
        self._flusher = Flusher(
            store,
            self.ledger.drain_dirty,
            interval_s=self.settings.flush_interval_ms / 1000,
            on_failure=self.alerts.flush_failed if self.alerts is not None else None,
        )
        self._flusher.start()
        for row in self._early_logs:
            self._flusher.enqueue(row)
        self._early_logs.clear()
        self.ready = True

    async def stop(self) -> None:
        # uvicorn has already let in-flight requests finish (or hit the grace period), so
        # every settle that will happen has happened: the final flush writes all of them.
        self.ready = False
        try:
            if self.shared_ledger is not None:
                # Queued settles first: the spend they mirror back is in the final flush.
                await self.shared_ledger.stop()
            if self._flusher is not None:
                await self._flusher.stop()
            if self._propagation is not None:
                await self._propagation.stop()
            if self._store is not None:
                await self._store.close()
        finally:
            await self.events.stop()
            if self.alerts is not None:
                await self.alerts.stop()
            if self.cache is not None:
                await self.cache.store.close()
            await self.endpoints.close()
            await self.engine.close()

    def _enqueue_spend_log(self, row: SpendLogRow) -> None:
        if self._flusher is not None:
            self._flusher.enqueue(row)
        else:
            self._early_logs.append(row)

    def _observe(self, call: Call) -> None:
        # Built once for both; messages only when a sink will receive them.
        event = call_event(call, log_messages=bool(self.events) and self.log_messages)
        if self.events:
            # One event per call, to every sink's queue; never blocks, never fails the call.
            self.events.publish(event)
        if self.alerts is not None:
            # After accounting.settle: budget alerts read the spend this call just added.
            self.alerts.on_call(event)

    def settle(self, call: Call) -> None:
        """Last stage of every inference call; runs in ``finally`` and is idempotent."""
        if call.settled:
            return
        self.accounting.settle(call)
        stats = self.stats
        stats.requests += 1
        stats.by_status[call.status] = stats.by_status.get(call.status, 0) + 1
        usage = call.usage
        if usage is not None:
            stats.prompt_tokens += usage.prompt_tokens
            stats.completion_tokens += usage.completion_tokens
        if self.prometheus is not None:
            # Counters are updated at once (a scrape right after a reply sees them).
            self.prometheus.observe(call)
        if self.events or self.alerts is not None:
            # Events are built once the reply is on its way: settle precedes a JSON answer
            # (so it can carry its cost), and none of this is the client's wait.
            asyncio.get_running_loop().call_soon(self._observe, call)
        if self.settings.access_log:
            key = call.principal.key if call.principal is not None else None
            log_access(
                call_id=call.call_id,
                key_alias=key.key_alias if key is not None else None,
                model=call.request.model if call.request is not None else None,
                status=call.status,
                latency_ms=(time.perf_counter() - call.started) * 1000,
            )


class InferenceRoutes:
    """The inference paths: exact ones looked up in a dict (the hot path), and the
    provider-native paths that carry the model in the URL, matched only when that misses."""

    __slots__ = ("exact", "patterns")

    def __init__(
        self,
        exact: dict[str, InferenceRoute],
        patterns: list[tuple[PathPattern, InferenceRoute]],
    ) -> None:
        self.exact = exact
        self.patterns = patterns

    def match(self, scope: Scope) -> InferenceRoute | None:
        route = self.exact.get(scope["path"])
        if route is not None or not scope["path"].startswith(_NATIVE_PREFIXES):
            return route
        # The raw path: a Bedrock model ARN's ``%2F`` must not split the path.
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        for pattern, candidate in self.patterns:
            found = pattern.fullmatch(raw)
            if found is not None:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                scope["path_params"] = params
                return candidate
        return None


# Google's, Cohere's, Bedrock's and Azure's own paths (LiteLLM serves them under a prefix).
_NATIVE_PREFIXES: tuple[str, ...] = ("/gemini/", "/v1beta/", "/v1alpha/", "/cohere/", "/bedrock/")
_NATIVE_PREFIXES += ("/model/", "/openai/")
_GEMINI_PATH = re.compile(
    r"(?:/gemini)?/v1(?:beta|alpha)?/models/(?P<model>[^:]+):"
    r"(?P<method>generateContent|streamGenerateContent)"
)
_BEDROCK_PATH = re.compile(
    r"(?:/bedrock)?/model/(?P<model>[^/]+)/(?P<method>converse|converse-stream)"
)


def inference_routes(state: GatewayState, post_call: Sequence[PostCall] = ()) -> InferenceRoutes:
    """The composition root of the inference path: the stages, in order, and the routes.

    read → authenticate → parse → authorize → route + admit + call → respond → settle.
    """
    accounting = state.accounting
    guardrails = state.guardrails
    # Post-call stages see a reply (and every stream event) before the client does; the
    # guardrails' run after any given here. With no guardrail configured, neither stage
    # exists and a reply is never decoded for them.
    post = [*post_call, guardrails] if guardrails.configured else list(post_call)
    capture = state.log_messages and bool(state.events)
    responder = Responder(
        accounting,
        state.settle,
        post,
        capture_text=capture,
        litellm_headers=state.settings.litellm_headers,
    )
    stages = Stages(
        # Authenticate before parsing: nothing of an unauthenticated body is decoded.
        authenticate=state.auth.authenticate,
        # The model allowlist runs on the requested name (after the key's aliases), before
        # any routing work.
        authorize=state.model_policy,
        # Routing resolves the group first so admission can reserve the worst case of every
        # deployment a retry or fallback may reach; stages that must precede the upstream
        # (``around``: guardrails, cache) run with the reservation held; the call comes last.
        admit=state.dispatch.admit,
        run=state.dispatch.run,
        respond=responder,
        # Settle runs in ``finally`` after respond, so a stream's final usage is known.
        settle=state.settle,
        next_id=state.request_ids.next,
        max_body_bytes=state.settings.max_body_bytes,
        # A shared (Redis) ledger admits in one awaited round trip right after ``admit``.
        confirm=accounting.confirm if accounting.shared is not None else None,
        # Pre-call and during-call guardrails: after admission (the reservation is held, so
        # a blocked call releases it), before the upstream (a block reaches no upstream).
        # The cache comes after them: its key is the request as the upstream would get it
        # (masked), and a hit still passes the post-call guardrails.
        around=[
            *([guardrails] if guardrails.configured else []),
            *([state.cache] if state.cache is not None else []),
        ],
    )
    chat = InferenceRoute(stages, InboundFormat(Kind.CHAT))
    completions = InferenceRoute(stages, InboundFormat(Kind.COMPLETION))
    embeddings = InferenceRoute(stages, InboundFormat(Kind.EMBEDDING))
    messages = InferenceRoute(stages, MessagesFormat())
    responses = InferenceRoute(stages, ResponsesFormat())
    routes = {}
    # Every route is served with and without the ``/v1`` prefix, as LiteLLM does.
    for path, route in (
        ("/chat/completions", chat),
        ("/completions", completions),
        ("/embeddings", embeddings),
        ("/messages", messages),
        ("/responses", responses),
    ):
        routes[path] = routes["/v1" + path] = route
    routes["/v2/chat"] = routes["/cohere/v2/chat"] = InferenceRoute(stages, CohereFormat())
    gemini = InferenceRoute(stages, GeminiFormat())
    patterns: list[tuple[PathPattern, InferenceRoute]] = [
        # /gemini/ naming no model group: Google's own API, left to the pass-through route.
        (ModelGroupPath(_GEMINI_PATH, "/gemini/", lambda: state.router), gemini),
        (_BEDROCK_PATH, InferenceRoute(stages, BedrockFormat())),
        *(
            (azure_path(kind), InferenceRoute(stages, AzureFormat(kind)))
            for kind in (Kind.CHAT, Kind.COMPLETION, Kind.EMBEDDING)
        ),
    ]
    return InferenceRoutes(routes, patterns)


class Gateway:
    """The ASGI application."""

    def __init__(self, state: GatewayState, post_call: Sequence[PostCall] = ()) -> None:
        self.state = state
        self.post_call = post_call
        self.hot = inference_routes(state, post_call)
        # What the server runs instead for a request with ``Expect: 100-continue``.
        self.expect_continue = ExpectGate(self, self.hot, state.auth, state.settings.max_body_bytes)
        self.web = Starlette(
            routes=_web_routes(state),
            lifespan=self._lifespan,
            exception_handlers={
                TollwayError: tollway_error,
                HTTPException: http_error,
                Exception: unexpected_error,
            },
        )
        # /ui, /docs, /openapi.json: routes of the web app only (and, with a master key, the
        # UI's session layer around it); nothing of it is on the inference path above.
        from ..ui import mount as mount_ui

        mount_ui(state, self.web, lambda: state.config, os.environ)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.hot.match(scope)
            if route is not None:
                if scope["method"] == "POST":
                    await route(scope, receive, send)
                    return
                await _send_error(send, method_not_allowed())
                return
        await self.web(scope, receive, send)

    def fast_route(self, path: str) -> InferenceRoute | None:
        """The route ``__call__`` would run for ``POST path`` (an exact path, no query), for
        the short path of ``TOLLWAY_SERVER=raw`` (``raw.py``)."""
        return self.hot.exact.get(path)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.state.start()
        # Everything built so far (config, price table, patterns, clients) lives as long as
        # the process: move it out of the collector's reach, so each collection a request
        # triggers walks only what requests allocate (CPython's ``gc.freeze``).
        gc.collect()
        gc.freeze()
        # Requests leave almost no cyclic garbage (bench.memory: collections during its load
        # phases free nothing), but at 1,000 connections in flight a full collection walks
        # every one of them (20-40 ms of CPU): one full collection per 100 middle ones instead
        # of per 10. The youngest generation is collected per 10,000 net new containers, not
        # 700: at 32 users that is 1 collection per 5 s instead of 173, at 1,000 users 26
        # instead of 524, and 2.6% (32 connections) to 5.7% (500) less CPU per request
        # (bench.ab); cyclic garbage, when some appears, waits for at most 10,000 objects.
        gc.set_threshold(10_000, 10, 100)
        transport = self.state.transport
        trimmer = Trimmer(
            lambda: self.state.request_ids.count,
            self.state.settings.memory_trim_s,
            transport.sweep_idle if isinstance(transport, LeanTransport) else None,
            self.state.store.release_memory,
        )
        trimmer.start()
        log.info("tollway ready: %d deployments", len(self.state.router.deployments()))
        # SIGHUP: the new config's routes replace ``self.hot`` in one assignment.
        reloader = Reloader(
            self.state, lambda: setattr(self, "hot", inference_routes(self.state, self.post_call))
        ).install()
        try:
            yield
        finally:
            await reloader.uninstall()
            await trimmer.stop()
            await self.state.stop()


def create_app(
    settings: Settings,
    config: Config,
    transport: Transport | None = None,
    clock: Clock | None = None,
    post_call: Sequence[PostCall] = (),
) -> Gateway:
    """The gateway as an ASGI app; tests pass a scripted ``transport`` and a fake ``clock``."""
    return Gateway(GatewayState(settings, config, transport, clock), post_call)


def app_from_environment() -> Gateway:
    """Factory for worker processes: the CLI exported every option as ``TOLLWAY_*``."""
    config = load_config(os.environ.get("TOLLWAY_CONFIG") or None)
    settings = from_environment()
    secrets = [settings.master_key or ""]
    secrets.extend(entry.litellm_params.api_key or "" for entry in config.model_list)
    secrets.extend(environment_secrets(os.environ))
    configure_logging(settings.log_level, secrets, settings.log_format)
    return create_app(settings, config)


def _web_routes(state: GatewayState) -> list[BaseRoute]:
    async def liveliness(request: Request) -> Response:
        return _json_response("I'm alive!")

    async def models(request: Request) -> Response:
        principal = state.auth.authenticate_headers(request.headers)
        # Only what the calling key may use; ``?only_model_access_groups=True`` lists the
        # access groups it may use instead (LiteLLM's parameter).
        groups = request.query_params.get("only_model_access_groups", "").lower() == "true"
        names = state.model_policy.visible(principal, state.router.model_names(), groups=groups)
        data = [
            {"id": name, "object": "model", "created": state.started_at, "owned_by": "tollway"}
            for name in names
        ]
        return _json_response({"object": "list", "data": data})

    async def ledger_status(request: Request) -> Response:
        principal = state.auth.authenticate_headers(request.headers)
        if principal.role is not Role.MASTER:
            raise PermissionDenied("the ledger status needs the master key")
        in_flight, reserved = state.ledger.outstanding()
        flush = state.flusher.stats()
        return _json_response(
            {
                "in_flight": in_flight,
                "reserved": reserved,
                "flush": msgspec.structs.asdict(flush),
                "requests": state.stats.requests,
            }
        )

    return [
        *admin_routes(state),
        *guardrail_routes(state.guardrails, state.auth.authenticate_headers, decode_body),
        *cache_routes(state.cache, state.auth.authenticate_headers),
        Route("/ledger/status", ledger_status, methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/liveness", liveliness, methods=["GET"]),
        *health_routes(state),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        *state.endpoints.routes(),
    ]


def _json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _send_error(send: Send, exc: TollwayError) -> None:
    body = exc.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
