"""Gemini's ``Schema`` (an OpenAPI subset with upper-case types) back to JSON Schema, for
tools and response schemas a Gemini client declares."""

from __future__ import annotations

from typing import Any

# Keys whose value is one schema, a map of schemas, or a list of schemas.
_ONE = ("items",)
_MAP = ("properties",)
_MANY = ("anyOf",)


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its types lower-cased and ``nullable`` spelt as a ``null`` type (the
    inverse of the outbound ``gemini_schema`` for the keywords Gemini has)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in _ONE and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in _MAP and isinstance(value, dict):
            out[key] = {k: json_schema(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in _MANY and isinstance(value, list):
            out[key] = [json_schema(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    if schema.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out
