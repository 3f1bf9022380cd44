"""Logging set-up, with a filter that scrubs every secret from every record.

Nothing on the request path logs on success; errors are logged once, and every record —
ours, uvicorn's, aiohttp's — passes the redaction filter before it is formatted.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping

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


def configure(level: str, secrets: Iterable[str] = ()) -> RedactSecrets:
    redactor = RedactSecrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    return redactor
