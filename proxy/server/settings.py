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

import msgspec

from ..config import Config

log = logging.getLogger("tollway.settings")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    config: str | None = None
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    master_key: str | None = None
    db: str = "tollway.db"
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
    log_format: str = "text"


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


def _upstream_client(text: str) -> str:
    kind = text.strip().lower()
    if kind not in ("lean", "aiohttp"):
        raise ValueError(f"expected lean|aiohttp, got {text!r}")
    return kind


def _server(text: str) -> str:
    kind = text.strip().lower()
    if kind not in ("uvicorn", "granian"):
        raise ValueError(f"expected uvicorn|granian, got {text!r}")
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
    Option("master_key", "TOLLWAY_MASTER_KEY", str, "admin key; required to bind off-loopback"),
    Option("db", "TOLLWAY_DB", str, "SQLite file for keys and spend"),
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
        "uvicorn (httptools; measured faster here) or granian (pip install granian)",
    ),
    Option("access_log", "TOLLWAY_ACCESS_LOG", _bool, "log every request (off: hot path)"),
    Option(
        "log_format",
        "TOLLWAY_LOG_FORMAT",
        _log_format,
        "text, or json: one JSON object per line",
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
        db_path = _sqlite_path(general.database_url) if general.database_url else None
        if db_path:
            values["db"] = db_path
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
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw is not None and raw != "":
            try:
                values[option.field] = option.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{option.env}: {exc}") from exc
    values.update({k: v for k, v in cli.items() if v is not None})
    settings = msgspec.convert(values, Settings)
    if settings.workers > 1 and settings.master_key:
        # Each worker would hold its own ledger: budgets would be enforced per process and
        # the absolute spend totals they flush would overwrite each other.
        raise SettingsError(
            "--workers > 1 with a master key (virtual keys, budgets) needs a shared ledger, "
            "which is not built yet: run one worker per process, or scale with replicas"
        )
    if not settings.master_key and not is_loopback(settings.host):
        raise SettingsError(
            f"refusing to bind {settings.host} without a master key: set TOLLWAY_MASTER_KEY "
            "or general_settings.master_key (without one the gateway only listens on loopback)"
        )
    return settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL; other databases (LiteLLM's Postgres) are not used."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    if "://" in url:
        log.warning("general_settings.database_url is not a sqlite:/// URL; using TOLLWAY_DB")
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
