"""JSON Schema cut down to Gemini's ``Schema`` (an OpenAPI subset that rejects the rest)."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest

# Gemini's Schema is an OpenAPI subset: other JSON Schema keywords are rejected with a 400.
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
        "maximum",
    }
)  # fmt: skip
_FORMATS = {
    "string": {"enum", "date-time"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}
# A self-referring schema would otherwise inline forever.
_MAX_DEPTH = 32


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's ``Schema``: ``$ref``s inlined, unknown keywords dropped,
    ``null`` unions spelt ``nullable``, types upper-cased."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    converted: dict[str, Any] = _convert(schema, definitions, 0)
    return converted


def _convert(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict):
        return node
    if depth > _MAX_DEPTH:
        raise InvalidRequest("a JSON schema nests too deep (or refers to itself) for Gemini")
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref.rsplit("/", 1)[-1])
        if target is None:
            raise InvalidRequest(f"a JSON schema refers to {ref!r}, which it does not define")
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions, depth + 1)
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else None
    if "const" in node and "enum" not in node:
        node = {**node, "enum": [node["const"]]}
    for key, value in node.items():
        if key not in _SCHEMA_KEYS or key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _convert(v, definitions, depth + 1) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, definitions, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [v for v in value if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(options) < len(value):
                out["nullable"] = True
            if len(options) == 1:
                out.update(_convert(options[0], definitions, depth + 1))
            else:
                out[key] = [_convert(v, definitions, depth + 1) for v in options]
        elif key == "format":
            if isinstance(kind, str) and value in _FORMATS.get(kind, ()):
                out[key] = value
        elif key == "enum" and isinstance(value, list):
            # Gemini's enums are strings only.
            out[key] = [str(v) for v in value]
            kind = "string"
        else:
            out[key] = value
    if isinstance(kind, str):
        out["type"] = kind.upper()
    return out
