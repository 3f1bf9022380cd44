"""``SIGHUP`` reloads ``config.yaml``: model list, router settings, guardrails and cache.

The new file is read and everything it decides is built off the event loop (in a thread);
any error — unreadable file, bad YAML, a field that does not validate, a provider or a
guardrail that cannot be built — refuses the reload: the error is logged and the running
config stays, untouched. On success the parts are swapped on the state and the gateway's
inference routes are rebuilt over them in one assignment, so a request already in flight
keeps the stages (router, guardrails, cache) it started with and finishes on the old config,
and every request accepted afterwards runs on the new one.

What a reload does not change: settings from the command line and environment (host, port,
master key, database, Redis), the ledger and the keys (admin data lives in the store), and
the admin routes bound at start (``/guardrails/list`` and ``/cache/*`` keep describing the
start-up guardrails and cache until a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import NamedTuple, Protocol

from ..admin.runtime_models import RuntimeModels
from ..cache.build import build_cache
from ..cache.stage import Cache
from ..clock import Clock
from ..config import Config, ConfigError, config_folder, load_config
from ..guardrails.registry import build_guardrails
from ..guardrails.stage import Guardrails
from ..pipeline.accounting import Accounting
from ..pipeline.policy import ModelPolicy, access_groups
from ..routing import Router, RoutingSettings
from ..routing.dispatch import Dispatcher
from ..upstream.engine import Engine
from ..upstream.providers import Provider, build_deployment, build_registry
from ..upstream.transport import Transport
from .settings import Settings

log = logging.getLogger("tollway.reload")


class Reloadable(Protocol):
    """The gateway state's collaborators that a config file decides (and what builds them)."""

    settings: Settings
    config: Config
    clock: Clock
    transport: Transport
    engine: Engine
    accounting: Accounting
    router: Router
    dispatch: Dispatcher
    model_policy: ModelPolicy
    guardrails: Guardrails
    cache: Cache | None
    runtime_models: RuntimeModels | None


class ConfigParts(NamedTuple):
    config: Config
    engine: Engine
    router: Router
    dispatch: Dispatcher
    model_policy: ModelPolicy
    guardrails: Guardrails
    cache: Cache | None


def build_parts(state: Reloadable, config: Config) -> ConfigParts:
    """Everything ``config`` decides, built as ``GatewayState.__init__`` builds it; raises on
    the first part that cannot be built. Blocking (imports, file reads): run it in a thread."""
    if state.runtime_models is not None:
        # Models added through /model/new live in the running router; a new router built
        # from the file alone would drop them.
        raise ConfigError(
            "general_settings.store_model_in_db is on: restart the gateway to reload the file"
        )
    settings, clock = state.settings, state.clock
    folder = config_folder(settings.config)
    custom: dict[str, Provider] = {}
    if config.litellm_settings.custom_provider_map:
        from ..upstream.custom import load_custom_providers

        custom.update(load_custom_providers(config, folder))
    deployments = [
        build_deployment(i, entry, config.router_settings, settings, custom)
        for i, entry in enumerate(config.model_list)
    ]
    router = Router(
        deployments,
        config.router_settings.model_group_alias,
        settings=RoutingSettings.from_config(config),
        clock=clock.monotonic,
        wall=clock.time,
        price_of=state.accounting.price_of,
    )
    # The engine owns the transport (its pools stay): a new one only for new providers.
    engine = Engine(state.transport, {**build_registry(), **custom}) if custom else state.engine
    guardrails = Guardrails(
        build_guardrails(
            config.guardrails, transport=state.transport, environ=os.environ, config_dir=folder
        )
    )
    return ConfigParts(
        config=config,
        engine=engine,
        router=router,
        dispatch=Dispatcher(router, engine, state.accounting),
        model_policy=ModelPolicy(access_groups(config.model_list)),
        guardrails=guardrails,
        cache=build_cache(config, os.environ, clock),
    )


class Reloader:
    """Reloads on ``SIGHUP`` (``install``/``uninstall`` in the lifespan) or on ``reload()``."""

    def __init__(self, state: Reloadable, rebuild_routes: Callable[[], None]) -> None:
        self._state = state
        self._rebuild_routes = rebuild_routes
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[object]] = set()
        self.reloads = 0

    def install(self) -> Reloader:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hup)
        except (RuntimeError, ValueError, NotImplementedError):
            # Not the main thread (an in-process test client, a server that runs the app
            # in a thread) or no signals here: reloading is then only by ``reload()``.
            log.debug("SIGHUP reload not installed: not on the main thread's loop")
        return self

    async def uninstall(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_hup(self) -> None:
        self._spawn(self.reload())

    def _spawn(self, job: object) -> None:
        assert asyncio.iscoroutine(job)
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """True when the new config is live; False (logged) when the old one stays."""
        state = self._state
        path = state.settings.config
        source = path or "<default config>"
        async with self._lock:
            try:
                config = await asyncio.to_thread(load_config, path)
                parts = await asyncio.to_thread(build_parts, state, config)
            except Exception as exc:
                # The first line names the file, field and line; a YAML error goes on to quote
                # the file's text, which may hold a key the log redaction does not know yet.
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.error("config reload refused, the running config stays: %s", reason)
                return False
            old_cache = state.cache
            state.config, state.engine = parts.config, parts.engine
            state.router, state.dispatch = parts.router, parts.dispatch
            state.model_policy, state.guardrails = parts.model_policy, parts.guardrails
            state.cache = parts.cache
            # Price overrides are cached per deployment id; ids may now name other entries.
            state.accounting.forget_prices()
            # The one switch: requests accepted from here on take the new routes.
            self._rebuild_routes()
            self.reloads += 1
        log.info("config reloaded from %s: %d deployments", source, len(parts.router.deployments()))
        new_store = parts.cache.store if parts.cache is not None else None
        if old_cache is not None and old_cache.store is not new_store:
            # In-flight requests may still use the old cache: close it after the grace period.
            self._spawn(self._close_later(old_cache, state.settings.graceful_timeout_s))
        return True

    async def _close_later(self, cache: Cache, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
        finally:  # also at shutdown, which cancels the wait
            await cache.store.close()
