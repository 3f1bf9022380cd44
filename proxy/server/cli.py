"""``tollway``: parse options, load the config, bind the socket, run the server.

The socket is bound here (not by the server) so ``--port 0`` works and the real address is
printed before serving. SIGTERM: stop accepting, let requests and streams finish within
``TOLLWAY_GRACEFUL_TIMEOUT_S``, then close the upstream pools (uvicorn's shutdown sequence).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..cache.config import CacheConfigError, read_settings
from ..config import Config, ConfigError, config_folder, line_of, load_config
from ..guardrails.base import Mode
from ..guardrails.registry import GuardrailSetupError, build_guardrails
from ..pricing import PriceFileError, PriceTable
from ..routing import Router, RoutingSettings
from ..upstream.custom import check_custom_providers
from ..upstream.lean import LeanTransport
from ..upstream.providers import build_deployment
from .logs import configure, environment_secrets
from .settings import OPTIONS, Settings, SettingsError, environ_for_workers, resolve

log = logging.getLogger("tollway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollway",
        description="A high-throughput, LiteLLM-compatible LLM gateway.",
        epilog="Every option also reads an environment variable (shown in brackets); "
        "precedence: command line > environment > config file > defaults.",
    )
    for option in OPTIONS:
        flag = "--" + option.field.replace("_", "-")
        kwargs: dict[str, Any] = {
            "dest": option.field,
            "default": None,
            "help": f"{option.help} [{option.env}]",
        }
        if option.field == "access_log":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = option.parse
        parser.add_argument(flag, **kwargs)
    # LiteLLM's quick start: one model, no config file (spelled --api_base there too).
    parser.add_argument("--model", dest="model", help="serve this one model [TOLLWAY_MODEL]")
    parser.add_argument(
        "--api-base", "--api_base", dest="api_base", help="its api_base [TOLLWAY_API_BASE]"
    )
    parser.add_argument("--version", action="version", version=f"tollway {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["rotate-salt-key"]:
        from ..store.models_db import rotate_salt_key_command

        return rotate_salt_key_command(argv[1:])
    args = vars(build_parser().parse_args(argv))
    # Exported, so worker processes build the same quick-start config.
    for name, variable in (("model", "TOLLWAY_MODEL"), ("api_base", "TOLLWAY_API_BASE")):
        if args.get(name):
            os.environ[variable] = args[name]
    config_path = args.get("config") or os.environ.get("TOLLWAY_CONFIG") or None
    bootstrap_level = args.get("log_level") or os.environ.get("TOLLWAY_LOG_LEVEL") or "info"
    bootstrap_format = args.get("log_format") or os.environ.get("TOLLWAY_LOG_FORMAT") or "text"
    bootstrap_format = "json" if bootstrap_format.strip().lower() == "json" else "text"
    configure(
        bootstrap_level if bootstrap_level in ("debug", "warning", "error") else "info",
        fmt=bootstrap_format,
    )
    try:
        config = load_config(config_path)
        settings = resolve(args, os.environ, config)
        check_guardrails(config, config_path)
        check_cache(config)
        check_models(config, settings, config_path)
    except (ConfigError, SettingsError) as exc:
        return fatal(str(exc), bootstrap_format)
    secrets = [settings.master_key or ""]
    secrets.extend(entry.litellm_params.api_key or "" for entry in config.model_list)
    secrets.extend(environment_secrets(os.environ))
    configure(settings.log_level, secrets, settings.log_format)
    return serve(settings, config)


def fatal(message: str, log_format: str) -> int:
    """Report a start-up failure on stderr (as a JSON log line in the json format, so every
    stderr line parses); the exit status is 2."""
    if log_format == "json":
        log.error("tollway: %s", message)
    else:
        print(f"tollway: {message}", file=sys.stderr)
    return 2


def check_guardrails(config: Config, config_path: str | None) -> None:
    """Build every configured guardrail once before the socket is bound, so a bad pattern,
    an unknown kind or a custom class that does not import stops start-up (exit 2) with its
    field and line. Building does no I/O (engines only keep the transport they are given)."""
    try:
        built = build_guardrails(
            config.guardrails,
            transport=LeanTransport(),
            environ=os.environ,
            config_dir=config_folder(config_path),
        )
    except GuardrailSetupError as exc:
        source = config_path or "<default config>"
        field = exc.path.removeprefix("$.")
        raise ConfigError(
            f"{source}: invalid {field}: {exc.message}{line_of(config_path, exc.path)}"
        ) from None
    for name, configured in built.items():
        if configured.runs(Mode.LOGGING_ONLY) and len(configured.entry.modes) == 1:
            log.warning(
                "guardrail %s: mode logging_only is not supported (Tollway logs no message "
                "content, so it has nothing to act on); it never runs",
                name,
            )


def check_cache(config: Config) -> None:
    """An unknown cache type or a bad cache parameter stops start-up (exit 2)."""
    litellm = config.litellm_settings
    try:
        read_settings(litellm.cache, litellm.cache_params, os.environ)
    except CacheConfigError as exc:
        raise ConfigError(f"{config_source(config)}: invalid {exc}") from None


def check_models(config: Config, settings: Settings, config_path: str | None) -> None:
    """Build every deployment, load every custom provider and read the price file before the
    socket is bound, so an unsupported provider, a bare name whose provider is unknown or a
    handler that does not import stops start-up (exit 2) with its field and line."""
    source = config_path or "<default config>"
    try:
        PriceTable.load(os.environ)
    except PriceFileError as exc:
        raise ConfigError(str(exc)) from None
    custom = check_custom_providers(config, config_folder(config_path), source, config_path)
    deployments = []
    for index, entry in enumerate(config.model_list):
        try:
            deployments.append(
                build_deployment(index, entry, config.router_settings, settings, custom)
            )
        except ConfigError as exc:
            field, _, problem = str(exc).partition(": ")
            where = line_of(config_path, "$." + field)
            raise ConfigError(f"{source}: invalid {field}{where}: {problem}") from None
    try:
        # The router checks what spans deployments (auto_router tiers, strategies).
        Router(
            deployments,
            config.router_settings.model_group_alias,
            settings=RoutingSettings.from_config(config),
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_source(config: Config) -> str:
    return os.environ.get("TOLLWAY_CONFIG") or "config"


def serve(settings: Any, config: Any) -> int:
    if settings.server == "granian":
        return serve_granian(settings)

    from .accept import EagerServer
    from .app import create_app
    from .uvicorn_protocol import TollwayConfig, TollwayHttpToolsProtocol

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        return fatal(
            f"cannot bind {settings.host}:{settings.port}: {exc.strerror}", settings.log_format
        )
    sock.listen(2048)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # Tests and scripts read this line to learn the port chosen for --port 0.
    print(f"tollway listening on http://{shown}:{port}", flush=True)
    from ..ui import startup_line

    try:
        print(startup_line(settings.master_key, f"http://{shown}:{port}", os.environ), flush=True)
    except ValueError as exc:
        return fatal(str(exc), settings.log_format)
    protocol: type[TollwayHttpToolsProtocol] = TollwayHttpToolsProtocol
    if settings.server == "raw":
        from .raw import RawProtocol

        protocol = RawProtocol
    common: dict[str, Any] = {
        "loop": "uvloop",
        "http": protocol,
        "lifespan": "on",
        "access_log": settings.access_log,
        "log_config": None,
        "server_header": False,
        # No X-Forwarded-* rewriting: the gateway never uses the client address, and the
        # middleware is one more layer on every request.
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "timeout_keep_alive": 5,
        # Slowloris guard and connection cap (see uvicorn_protocol.py).
        "header_timeout_s": settings.header_timeout_s,
        "limit_concurrency": settings.max_connections or None,
    }
    if settings.workers > 1:
        os.environ.update(environ_for_workers(settings))
        if settings.config:
            os.environ["TOLLWAY_CONFIG"] = os.path.abspath(settings.config)
        uv_config = TollwayConfig(
            "proxy.server.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **common,
        )
        from uvicorn.supervisors import Multiprocess

        Multiprocess(uv_config, sockets=[sock]).run()
        return 0
    uv_config = TollwayConfig(create_app(settings, config), **common)
    # uvicorn's server, accepting every waiting connection each loop turn (accept.py).
    server = EagerServer(uv_config)
    # uvicorn re-raises the signal it shut down on once it has restored the handlers found
    # at start; with these in place a graceful SIGTERM/SIGINT ends with exit status 0.
    signal.signal(signal.SIGTERM, _after_shutdown)
    signal.signal(signal.SIGINT, _after_shutdown)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _after_shutdown(signum: int, frame: object) -> None:
    log.info("tollway stopped after signal %d", signum)


def serve_granian(settings: Any) -> int:
    """Granian (Rust HTTP, ASGI interface) for comparison; it binds the port itself."""
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
    except ImportError:
        print("tollway: TOLLWAY_SERVER=granian needs `pip install granian`", file=sys.stderr)
        return 2
    port = settings.port
    if port == 0:
        # Granian cannot be handed a bound socket: pick a free port, release it, pass it on.
        with socket.socket() as probe:
            probe.bind((settings.host, 0))
            port = probe.getsockname()[1]
    os.environ.update(environ_for_workers(settings))
    if settings.config:
        os.environ["TOLLWAY_CONFIG"] = os.path.abspath(settings.config)
    print(f"tollway listening on http://{settings.host}:{port}", flush=True)
    from ..ui import startup_line

    print(startup_line(settings.master_key, f"http://{settings.host}:{port}", os.environ))
    Granian(
        "proxy.server.cli:granian_app",
        factory=True,
        address=settings.host,
        port=port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=settings.workers,
        websockets=False,
        log_access=settings.access_log,
        workers_kill_timeout=int(settings.graceful_timeout_s) or None,
    ).serve()
    return 0


def granian_app() -> Any:
    """Granian's app factory: the gateway, with ``Expect: 100-continue`` decided from the
    headers first (granian answers ``100 Continue`` on the app's first ``receive()``, and
    the inference routes read before they authenticate; see ``expect.py``)."""
    from .app import app_from_environment
    from .expect import expect_first

    return expect_first(app_from_environment())
