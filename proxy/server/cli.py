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
from ..upstream.transport import AiohttpTransport
from .logs import configure, environment_secrets
from .settings import OPTIONS, SettingsError, environ_for_workers, resolve

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
    parser.add_argument("--version", action="version", version=f"tollway {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
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
            transport=AiohttpTransport(),
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


def config_source(config: Config) -> str:
    return os.environ.get("TOLLWAY_CONFIG") or "config"


def serve(settings: Any, config: Any) -> int:
    if settings.server == "granian":
        return serve_granian(settings)
    import uvicorn

    from .app import create_app
    from .uvicorn_protocol import TollwayHttpToolsProtocol

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
    common: dict[str, Any] = {
        "loop": "uvloop",
        "http": TollwayHttpToolsProtocol,
        "lifespan": "on",
        "access_log": settings.access_log,
        "log_config": None,
        "server_header": False,
        # No X-Forwarded-* rewriting: the gateway never uses the client address, and the
        # middleware is one more layer on every request.
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "timeout_keep_alive": 5,
    }
    if settings.workers > 1:
        os.environ.update(environ_for_workers(settings))
        if settings.config:
            os.environ["TOLLWAY_CONFIG"] = os.path.abspath(settings.config)
        uv_config = uvicorn.Config(
            "proxy.server.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **common,
        )
        from uvicorn.supervisors import Multiprocess

        Multiprocess(uv_config, sockets=[sock]).run()
        return 0
    uv_config = uvicorn.Config(create_app(settings, config), **common)
    server = uvicorn.Server(uv_config)
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
    Granian(
        "proxy.server.app:app_from_environment",
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
