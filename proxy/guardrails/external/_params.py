"""Reading one engine's ``litellm_params``: typed getters that name the field they reject.

Keys an engine does not read are ignored: a LiteLLM guardrail entry carries the framework's
own keys (``guardrail``, ``mode``, ``default_on`` ...) next to the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import GuardrailConfigError

DEFAULT_TIMEOUT = 5.0


class Params:
    __slots__ = ("_params",)

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params

    def text(self, field: str, default: str | None = None) -> str | None:
        value = self._params.get(field)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise GuardrailConfigError(field, "must be a string")
        return str(value)

    def required_text(self, field: str, fallback: str | None = None) -> str:
        value = self.text(field, fallback)
        if value is None:
            raise GuardrailConfigError(field, "is required")
        return value

    def flag(self, field: str, default: bool = False) -> bool:
        value = self._params.get(field)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise GuardrailConfigError(field, "must be true or false")

    def seconds(self, field: str = "timeout", default: float = DEFAULT_TIMEOUT) -> float:
        value = self._params.get(field)
        if value is None:
            return default
        number = _number(field, value)
        if not number > 0:
            raise GuardrailConfigError(field, "must be a positive number of seconds")
        return number

    def mapping(self, field: str) -> dict[str, Any] | None:
        value = self._params.get(field)
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise GuardrailConfigError(field, "must be a mapping with string keys")
        return dict(value)

    def text_mapping(self, field: str) -> dict[str, str]:
        mapping = self.mapping(field) or {}
        for key, value in mapping.items():
            if not isinstance(value, str):
                raise GuardrailConfigError(field, f"the value for {key!r} must be a string")
        return mapping

    def score_mapping(self, field: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        for key, value in (self.mapping(field) or {}).items():
            score = _number(field, value)
            if not 0.0 <= score <= 1.0:
                raise GuardrailConfigError(field, f"the score for {key!r} must be in [0, 1]")
            scores[key] = score
        return scores


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise GuardrailConfigError(field, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GuardrailConfigError(field, "must be a number") from None
    if not math.isfinite(number):
        raise GuardrailConfigError(field, "must be a finite number")
    return number


def http_base(field: str, value: str) -> str:
    """``value`` without a trailing slash; a bare ``host:port`` is taken as ``http://``."""
    base = value.strip().rstrip("/")
    if "://" not in base:
        base = "http://" + base
    try:
        parts = urlsplit(base)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise GuardrailConfigError(field, "must be an http:// or https:// URL")
    return base
