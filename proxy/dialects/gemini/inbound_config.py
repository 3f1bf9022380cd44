"""The settings of a client's ``generateContent`` body as ``ChatRequest`` fields:
``functionDeclarations`` → tools (Gemini's ``Schema`` back to JSON Schema, or a
``parametersJsonSchema`` as it is), ``toolConfig`` → ``tool_choice`` and
``generationConfig`` → sampling, limits, ``n``, logprobs and JSON mode."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import ChatRequest, FunctionSpec, ResponseFormat, Tool
from ..inbound import (
    json_mode,
    non_empty_string,
    object_at,
    optional_integer,
    optional_number,
    string_list,
)
from .inbound_schema import json_schema

_MODES = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}


def field(obj: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present: Google's JSON accepts camelCase and snake_case."""
    for name in names:
        if name in obj:
            return obj[name]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in names[0])
    return obj.get(snake)


def tools_of(tools: Any) -> list[Tool]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list of tools", param="tools")
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        declarations = field(object_at(tool, f"tools[{i}]"), "functionDeclarations")
        # Google's own tools (googleSearch, codeExecution …) have no place in chat.
        if declarations is None:
            continue
        if not isinstance(declarations, list):
            raise InvalidRequest(
                f"`tools[{i}].functionDeclarations` must be a list",
                param=f"tools[{i}].functionDeclarations",
            )
        for j, declaration in enumerate(declarations):
            out.append(_declaration(declaration, f"tools[{i}].functionDeclarations[{j}]"))
    return out


def _declaration(value: Any, where: str) -> Tool:
    declaration = object_at(value, where)
    name = non_empty_string(declaration.get("name"), f"{where}.name")
    description = declaration.get("description")
    parameters = field(declaration, "parametersJsonSchema", "parameters_json_schema")
    if parameters is None:
        schema = declaration.get("parameters")
        parameters = json_schema(schema) if isinstance(schema, dict) else None
    return Tool(
        function=FunctionSpec(
            name=name,
            description=description if isinstance(description, str) and description else None,
            parameters=parameters or {"type": "object", "properties": {}},
        )
    )


def apply_tool_config(request: ChatRequest, config: Any) -> None:
    if config is None:
        return
    calling = field(object_at(config, "toolConfig"), "functionCallingConfig")
    if calling is None:
        return
    calling = object_at(calling, "toolConfig.functionCallingConfig")
    mode = calling.get("mode")
    if mode in (None, "MODE_UNSPECIFIED"):
        return
    choice = _MODES.get(mode) if isinstance(mode, str) else None
    if choice is None:
        raise InvalidRequest(
            f"`toolConfig.functionCallingConfig.mode` {mode!r} is not one of "
            "AUTO, ANY, NONE, VALIDATED",
            param="toolConfig.functionCallingConfig.mode",
        )
    allowed = field(calling, "allowedFunctionNames")
    names = [n for n in allowed if isinstance(n, str)] if isinstance(allowed, list) else []
    if choice == "required" and len(names) == 1:
        request.tool_choice = {"type": "function", "function": {"name": names[0]}}
        return
    if choice == "required" and names and request.tools:
        # Several allowed names: the common model can force only one, so offer only these.
        request.tools = [t for t in request.tools if t.function.name in names] or None
    request.tool_choice = choice


def apply_generation_config(request: ChatRequest, value: Any) -> None:
    if value is None:
        return
    config = object_at(value, "generationConfig")
    request.temperature = _number(config, "temperature")
    request.top_p = _number(config, "topP")
    request.presence_penalty = _number(config, "presencePenalty")
    request.frequency_penalty = _number(config, "frequencyPenalty")
    request.top_k = _integer(config, "topK", minimum=0)
    request.max_tokens = _integer(config, "maxOutputTokens", minimum=1)
    request.n = _integer(config, "candidateCount", minimum=1)
    request.seed = _integer(config, "seed")
    if field(config, "responseLogprobs") is True:
        request.logprobs = True
        request.top_logprobs = _integer(config, "logprobs", minimum=0)
    stops = field(config, "stopSequences")
    if stops is not None:
        request.stop = string_list(stops, "generationConfig.stopSequences") or None
    request.response_format = _response_format(config)


def _response_format(config: dict[str, Any]) -> ResponseFormat | None:
    if field(config, "responseMimeType") != "application/json":
        return None
    schema = field(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        gemini = field(config, "responseSchema")
        schema = json_schema(gemini) if isinstance(gemini, dict) else None
    return json_mode(schema)


def _number(config: dict[str, Any], name: str) -> float | None:
    return optional_number(field(config, name), f"generationConfig.{name}")


def _integer(config: dict[str, Any], name: str, minimum: int | None = None) -> int | None:
    value = field(config, name)
    # Google's JSON allows an integral float (and int64 as a string, which no client sends).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return optional_integer(value, f"generationConfig.{name}", minimum)
