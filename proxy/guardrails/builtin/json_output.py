"""``json_output``: the reply must be JSON, and match a JSON Schema when one is given.

A reply wrapped in a Markdown code fence (```json ... ```) is unwrapped first. Each reply
text is checked on its own (one per choice). The schema is checked at startup; ``$ref`` to
other documents is not fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import orjson

from proxy.guardrails.base import ALLOW, CheckContext, Verdict, block
from proxy.guardrails.builtin import params as p
from proxy.guardrails.errors import GuardrailConfigError

NAMES = ("json_output",)
PARAMS = frozenset({"json_schema", "json_schema_file"})
_MAX_MESSAGE = 200


def unfence(text: str) -> str:
    """The body of a reply wrapped in one Markdown code fence, else the reply itself."""
    body = text.strip()
    if not (body.startswith("```") and body.endswith("```") and len(body) >= 6):
        return text
    newline = body.find("\n")
    if newline == -1 or newline > len(body) - 3:
        return text
    return body[newline + 1 : -3]


class JsonOutput:
    """Blocks replies that are not JSON or do not match ``schema``; inputs are not checked."""

    def __init__(self, name: str, schema: dict[str, Any] | None = None) -> None:
        self.name = name
        self.schema = schema
        self._validator: jsonschema.protocols.Validator | None = None
        if schema is not None:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any], config_dir: Path) -> JsonOutput:
        schema: object = None
        field = "json_schema"
        if "json_schema" in params and "json_schema_file" in params:
            raise GuardrailConfigError("json_schema_file", "give json_schema or json_schema_file")
        if params.get("json_schema") is not None:
            schema = params["json_schema"]
        elif params.get("json_schema_file") is not None:
            field = "json_schema_file"
            path, text = p.read_file(config_dir, params["json_schema_file"], field)
            schema = p.load_structured(path, text, field)
        if schema is None:
            return cls(name)
        if not isinstance(schema, dict):
            raise GuardrailConfigError(field, "a JSON Schema must be a mapping")
        try:
            return cls(name, schema)
        except jsonschema.exceptions.SchemaError as exc:
            where = exc.json_path if exc.path else "$"
            raise GuardrailConfigError(
                field, f"not a valid JSON Schema at {where}: {exc.message}"
            ) from exc

    def check(self, text: str) -> Verdict:
        try:
            document = orjson.loads(unfence(text))
        except orjson.JSONDecodeError:
            return block("reply is not valid JSON")
        if self._validator is None:
            return ALLOW
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(document))
        if error is None:
            return ALLOW
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        return block(f"reply does not match the schema at {error.json_path}: {message}")

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return ALLOW

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        for text in texts:
            verdict = self.check(text)
            if verdict.blocked:
                return verdict
        return ALLOW

    def stream_checker(self, context: CheckContext) -> None:
        return None
