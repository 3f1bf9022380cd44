"""Logging set-up, with a filter that scrubs every secret from every record.

Nothing on the request path logs on success (unless ``TOLLWAY_ACCESS_LOG`` asks for one line
per call); errors are logged once, and every record — ours, uvicorn's, aiohttp's — passes the
redaction filter before it is formatted, as text or (``TOLLWAY_LOG_FORMAT=json``) as one JSON
object per line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

_TOKEN_PATTERNS = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+")


class RedactSecrets(logging.Filter):
    """Replace known secrets and anything key-shaped with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return _TOKEN_PATTERNS.sub(_mask, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name in CALL_FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


def scrub_text(text: str) -> str:
    """``text`` with anything key-shaped masked (for what sinks receive: messages, errors)."""
    return _TOKEN_PATTERNS.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + "[redacted]"
    return match.group(2) + "...[redacted]"


_SECRET_SUFFIXES = (
    "_API_KEY",
    "_SECRET",
    "_SECRET_KEY",
    "_SECRET_ACCESS_KEY",
    "_TOKEN",
    "_PASSWORD",
    "_MASTER_KEY",
)


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of variables whose names say they hold a secret (``*_API_KEY``, ``*_TOKEN`` ...)."""
    return [
        value
        for name, value in environ.items()
        if name.upper().endswith(_SECRET_SUFFIXES) and value
    ]


# The fields of a per-call record (``log_access``), as attributes of the ``LogRecord``.
CALL_FIELDS = ("call_id", "key_alias", "model", "status", "latency_ms")

access_log = logging.getLogger("tollway.access")


def log_access(
    *, call_id: str, key_alias: str | None, model: str | None, status: int, latency_ms: float
) -> None:
    """One line for a settled call (``TOLLWAY_ACCESS_LOG``). The key appears only as its
    alias; the JSON format carries each field as its own member."""
    latency = round(latency_ms, 3)
    access_log.info(
        "call %s model=%s status=%d latency_ms=%.3f key_alias=%s",
        call_id,
        model or "-",
        status,
        latency,
        key_alias or "-",
        extra={
            "call_id": call_id,
            "key_alias": key_alias,
            "model": model,
            "status": status,
            "latency_ms": latency,
        },
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the per-call
    fields when the record has them, and the traceback as ``exc_info``.

    Formatting happens after the handler's filters, so it sees what ``RedactSecrets`` left;
    a message is escaped by the encoder (newlines included), never split across lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        millis = int((record.created - seconds) * 1000)
        out: dict[str, Any] = {
            "time": f"{stamp}.{millis:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = record.stack_info
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:
            # orjson refuses lone surrogates (undecodable bytes); json escapes them.
            return json.dumps(out, default=str)


def configure(level: str, secrets: Iterable[str] = (), fmt: str = "text") -> RedactSecrets:
    """Route every logger to stderr through one handler: the redaction filter, then the
    ``text`` or ``json`` formatter."""
    redactor = RedactSecrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    return redactor
