"""Runtime options: one frozen ``Settings``, resolved CLI > environment > config file > defaults.

The config file layer: ``general_settings.master_key``, ``database_url`` (sqlite),
``max_request_size_mb``, ``proxy_batch_write_at`` (seconds between ledger flushes) and
``litellm_settings.request_timeout``, ``set_verbose`` (debug logs), ``json_logs``.

Every option has a ``TOLLWAY_*`` environment variable; ``OPTIONS`` is the single table the
CLI, the resolver and the README are written from.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec

from ..config import Config

log = logging.getLogger("tollway.settings")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    config: str | None = None
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    redis_url: str | None = None
    redis_failure: str = "closed"
    redis_timeout_ms: int = 250
    redis_lease_s: float = 30.0
    master_key: str | None = None
    db: str = "tollway.db"
    database_url: str | None = None
    db_pool_size: int = 10
    replicas: int = 1
    flush_interval_ms: int = 200
    max_body_bytes: int = 8 * 1024 * 1024
    log_level: str = "info"
    graceful_timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 600.0
    pool_size: int = 512
    upstream_client: str = "lean"
    server: str = "uvicorn"
    access_log: bool = False
    litellm_headers: bool = True
    log_format: str = "text"
    header_timeout_s: float = 10.0
    max_connections: int = 4096
    min_capped_tokens: int = 16
    memory_trim_s: float = 10.0


class Option(NamedTuple):
    field: str
    env: str
    parse: Callable[[str], Any]
    help: str


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(f"expected a number >= 0, got {text!r}")
    return value


def _redis_failure(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("closed", "open"):
        raise ValueError(f"expected closed|open, got {text!r}")
    return mode


def _upstream_client(text: str) -> str:
    kind = text.strip().lower()
    if kind not in ("lean", "aiohttp"):
        raise ValueError(f"expected lean|aiohttp, got {text!r}")
    return kind


def _server(text: str) -> str:
    kind = text.strip().lower()
    if kind not in ("uvicorn", "raw", "granian"):
        raise ValueError(f"expected uvicorn|raw|granian, got {text!r}")
    return kind


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in ("debug", "info", "warning", "error", "critical"):
        raise ValueError(f"expected debug|info|warning|error|critical, got {text!r}")
    return level


def _log_format(text: str) -> str:
    kind = text.strip().lower()
    if kind not in LOG_FORMATS:
        raise ValueError(f"expected {'|'.join(LOG_FORMATS)}, got {text!r}")
    return kind


LOG_FORMATS = ("text", "json")

OPTIONS: tuple[Option, ...] = (
    Option("config", "TOLLWAY_CONFIG", str, "LiteLLM-format config file (default: embedded)"),
    Option("host", "TOLLWAY_HOST", str, "address to bind"),
    Option("port", "TOLLWAY_PORT", _positive_int, "port to bind (0 picks a free one)"),
    Option("workers", "TOLLWAY_WORKERS", _positive_int, "worker processes"),
    Option(
        "redis_url",
        "TOLLWAY_REDIS_URL",
        str,
        "redis://[:password@]host:6379/0: the shared ledger for several workers and replicas",
    ),
    Option(
        "redis_failure",
        "TOLLWAY_REDIS_FAILURE",
        _redis_failure,
        "when Redis does not answer: closed (503) or open (admit on this process's ledger)",
    ),
    Option(
        "redis_timeout_ms",
        "TOLLWAY_REDIS_TIMEOUT_MS",
        _positive_int,
        "deadline of every call to the Redis ledger",
    ),
    Option(
        "redis_lease_s",
        "TOLLWAY_REDIS_LEASE_S",
        _positive_float,
        "a dead replica's reservations are reclaimed after this",
    ),
    Option("master_key", "TOLLWAY_MASTER_KEY", str, "admin key; required to bind off-loopback"),
    Option("db", "TOLLWAY_DB", str, "SQLite file for keys and spend"),
    Option(
        "database_url",
        "TOLLWAY_DATABASE_URL",
        str,
        "postgresql://user:password@host:5432/db: the shared store for several replicas "
        "(DATABASE_URL is read too)",
    ),
    Option("db_pool_size", "TOLLWAY_DB_POOL_SIZE", _positive_int, "PostgreSQL connections"),
    Option(
        "replicas",
        "TOLLWAY_REPLICAS",
        _positive_int,
        "replicas sharing one store (more than 1 needs PostgreSQL)",
    ),
    Option("flush_interval_ms", "TOLLWAY_FLUSH_INTERVAL_MS", _positive_int, "ledger flush period"),
    Option("max_body_bytes", "TOLLWAY_MAX_BODY_BYTES", _positive_int, "largest request body"),
    Option("log_level", "TOLLWAY_LOG_LEVEL", _log_level, "debug|info|warning|error"),
    Option(
        "graceful_timeout_s",
        "TOLLWAY_GRACEFUL_TIMEOUT_S",
        _positive_float,
        "on SIGTERM, how long in-flight requests and streams may finish",
    ),
    Option(
        "connect_timeout_s",
        "TOLLWAY_CONNECT_TIMEOUT_S",
        _positive_float,
        "upstream TCP/TLS connect deadline",
    ),
    Option(
        "request_timeout_s",
        "TOLLWAY_REQUEST_TIMEOUT_S",
        _positive_float,
        "upstream first-byte and idle deadline when the config sets none",
    ),
    Option("pool_size", "TOLLWAY_POOL_SIZE", _positive_int, "max connections per upstream base"),
    Option(
        "upstream_client",
        "TOLLWAY_UPSTREAM_CLIENT",
        _upstream_client,
        "lean (httptools pools) or aiohttp; aiohttp is used when HTTP(S)_PROXY is set",
    ),
    Option(
        "server",
        "TOLLWAY_SERVER",
        _server,
        "uvicorn (httptools; measured faster here), raw (uvicorn with a short path for the "
        "inference POSTs) or granian (pip install granian)",
    ),
    Option("access_log", "TOLLWAY_ACCESS_LOG", _bool, "log every request (off: hot path)"),
    Option(
        "litellm_headers",
        "TOLLWAY_LITELLM_HEADERS",
        _bool,
        "send x-litellm-* reply headers beside x-tollway-* (0: off)",
    ),
    Option(
        "log_format",
        "TOLLWAY_LOG_FORMAT",
        _log_format,
        "text, or json: one JSON object per line",
    ),
    Option(
        "header_timeout_s",
        "TOLLWAY_HEADER_TIMEOUT_S",
        _non_negative_float,
        "seconds a request's headers may take to arrive before the connection is closed "
        "(0: no limit)",
    ),
    Option(
        "max_connections",
        "TOLLWAY_MAX_CONNECTIONS",
        _positive_int,
        "open connections beyond this are answered 503 and closed (0: no limit)",
    ),
    Option(
        "memory_trim_s",
        "TOLLWAY_MEMORY_TRIM_S",
        _non_negative_float,
        "every this many seconds, when the request rate has fallen from a burst, freed heap "
        "memory is returned to the system (glibc malloc_trim; 0: off)",
    ),
    Option(
        "min_capped_tokens",
        "TOLLWAY_MIN_CAPPED_TOKENS",
        _positive_int,
        "a call a budget can pay for only with its output capped is refused below this many "
        "output tokens",
    ),
)


class SettingsError(Exception):
    pass


def resolve(cli: Mapping[str, Any], environ: Mapping[str, str], config: Config | None) -> Settings:
    """Merge the layers; ``cli`` holds only the options given on the command line."""
    values: dict[str, Any] = {}
    if config is not None:
        general = config.general_settings
        if general.master_key:
            values["master_key"] = general.master_key
        if general.database_url:
            values.update(_database(general.database_url))
        if general.max_request_size_mb:
            values["max_body_bytes"] = int(general.max_request_size_mb * 1024 * 1024)
        if general.proxy_batch_write_at:
            values["flush_interval_ms"] = max(1, round(general.proxy_batch_write_at * 1000))
        litellm = config.litellm_settings
        if litellm.request_timeout:
            values["request_timeout_s"] = float(litellm.request_timeout)
        if litellm.set_verbose:
            values["log_level"] = "debug"
        if litellm.json_logs:
            values["log_format"] = "json"
        redis_url = _redis_url(config)
        if redis_url:
            values["redis_url"] = redis_url
    if environ.get("DATABASE_URL"):
        # LiteLLM's variable: below TOLLWAY_DATABASE_URL / TOLLWAY_DB, above the file.
        values.update(_database(environ["DATABASE_URL"]))
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw is not None and raw != "":
            try:
                values[option.field] = option.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{option.env}: {exc}") from exc
    values.update({k: v for k, v in cli.items() if v is not None})
    settings = msgspec.convert(values, Settings)
    if settings.workers > 1 and settings.master_key and not settings.redis_url:
        # Each worker would hold its own ledger: budgets would be enforced per process and
        # the absolute spend totals they flush would overwrite each other.
        raise SettingsError(
            f"--workers {settings.workers} with a master key (virtual keys, budgets) needs "
            "the shared Redis ledger: set TOLLWAY_REDIS_URL=redis://host:6379/0 (or "
            "router_settings.redis_host / redis_port / redis_password in config.yaml), or "
            "run one worker"
        )
    if settings.replicas > 1 and not _is_postgres(settings.database_url):
        # Each replica's SQLite file would hold its own keys and spend.
        raise SettingsError(
            f"{settings.replicas} replicas on SQLite: replicas need one shared store, set "
            "DATABASE_URL=postgresql://user:password@host:5432/tollway (see README, Running "
            "in production)"
        )
    if not settings.master_key and not is_loopback(settings.host):
        raise SettingsError(
            f"refusing to bind {settings.host} without a master key: set TOLLWAY_MASTER_KEY "
            "or general_settings.master_key (without one the gateway only listens on loopback)"
        )
    return settings


def _redis_url(config: Config) -> str | None:
    """The Redis of ``router_settings`` (LiteLLM's shared state), else the Redis cache's."""
    router = config.router_settings
    if router.redis_url:
        return router.redis_url
    if router.redis_host:
        return _url_of(router.redis_host, router.redis_port, router.redis_password)
    params = config.litellm_settings.cache_params or {}
    url = params.get("redis_url") or params.get("url")
    if url:
        return str(url)
    if params.get("host"):
        port = params.get("port")
        password = params.get("password")
        return _url_of(
            str(params["host"]),
            int(port) if port else None,
            str(password) if password else None,
        )
    return None


def _url_of(host: str, port: int | None, password: str | None) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port or 6379}/0"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_postgres(url: str | None) -> bool:
    return url is not None and url.startswith(("postgresql://", "postgres://"))


def _database(url: str) -> dict[str, str]:
    """A ``postgresql://`` URL selects PostgreSQL; a ``sqlite:///`` URL or a path, the file."""
    if _is_postgres(url):
        return {"database_url": url}
    path = _sqlite_path(url)
    return {"db": path} if path else {}


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (or a bare path); other schemes are not used."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    if "://" in url:
        log.warning("database_url is neither postgresql:// nor sqlite:///; using TOLLWAY_DB")
        return None
    return url


def environ_for_workers(settings: Settings) -> dict[str, str]:
    """The settings as ``TOLLWAY_*`` variables, so worker processes resolve the same values."""
    out = {}
    for option in OPTIONS:
        value = getattr(settings, option.field)
        if value is None:
            continue
        out[option.env] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def from_environment() -> Settings:
    return resolve({}, os.environ, None)
