"""Reading a built-in guardrail's ``litellm_params``: each helper names the failing field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from proxy.guardrails.errors import GuardrailConfigError


def mapping(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GuardrailConfigError(field, f"must be a mapping, not {type(value).__name__}")
    return value


def string(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise GuardrailConfigError(field, "must be a non-empty string")
    return value


def positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GuardrailConfigError(field, f"must be a positive integer, not {value!r}")
    return value


def fraction(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise GuardrailConfigError(field, f"must be a number from 0 to 1, not {value!r}")
    return float(value)


def read_file(config_dir: Path, value: object, field: str) -> tuple[Path, str]:
    """The file named by ``value`` (relative to the config file's folder) and its text."""
    path = config_dir / string(value, field)
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardrailConfigError(field, f"cannot read {path}: {exc}") from exc


def load_structured(path: Path, text: str, field: str) -> object:
    """A JSON or YAML document (by extension; YAML also reads JSON)."""
    try:
        if path.suffix.lower() == ".json":
            return orjson.loads(text)
        return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise GuardrailConfigError(field, f"{path} is not valid: {exc}") from exc
