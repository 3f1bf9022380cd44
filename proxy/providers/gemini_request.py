"""OpenAI chat requests as Gemini ``generateContent`` bodies.

Messages become ``contents`` (roles ``user``/``model``; tool results are
``functionResponse`` parts in a user turn) and ``systemInstruction``; ``tools`` become
``functionDeclarations`` with their JSON Schemas cut down to Gemini's ``Schema``
(``gemini_schema``); ``tool_choice`` becomes ``toolConfig``, sampling and JSON mode
``generationConfig``. A tool call id carrying a ``thoughtSignature`` (``SIGNATURE_MARK``)
gives the signature back to Gemini.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from ..formats.translate import append_turn, parse_data_url, text_of
from ._openai_format import (
    ChatMessage,
    ChatRequest,
    arguments_object,
    image_url_of,
    loads_object,
    mime_of_url,
    unsupported,
)

SIGNATURE_MARK = "__thought__"


def build_request(chat: ChatRequest) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.role
        if role in ("system", "developer"):
            text = text_of(message.content)
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            append_turn(contents, "user", _user_parts(message, where), "parts")
        elif role == "assistant":
            append_turn(contents, "model", _assistant_parts(message, where, names_by_id), "parts")
        elif role in ("tool", "function"):
            append_turn(contents, "user", [_tool_result(message, names_by_id)], "parts")
        else:
            raise unsupported(f"{where}.role", role, "gemini/")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = chat.tool_list()
    if tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function) for t in tools]}]
    tool_config = _tool_config(chat)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(chat)
    if config:
        body["generationConfig"] = config
    return body


def _user_parts(message: ChatMessage, where: str) -> list[dict[str, Any]]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_media(image_url_of(part)))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format', 'wav')}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            if file.get("file_data"):
                parts.append(_media(str(file["file_data"]), "application/pdf"))
            elif file.get("file_id"):
                uri = str(file["file_id"])
                parts.append(
                    {"fileData": {"mimeType": mime_of_url(uri, "application/pdf"), "fileUri": uri}}
                )
        else:
            raise unsupported(f"{where}.content[{j}].type", kind, "gemini/")
    return parts


def _media(url: str, default_mime: str = "image/jpeg") -> dict[str, Any]:
    inline = parse_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    return {"fileData": {"mimeType": mime_of_url(url, default_mime), "fileUri": url}}


def _assistant_parts(
    message: ChatMessage, where: str, names_by_id: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.content)
    if text:
        parts.append({"text": text})
    for j, call in enumerate(message.tool_calls or ()):
        names_by_id[call.id] = call.function.name
        part: dict[str, Any] = {
            "functionCall": {
                "name": call.function.name,
                "args": arguments_object(call, f"{where}.tool_calls[{j}]"),
            }
        }
        _, mark, signature = call.id.partition(SIGNATURE_MARK)
        if mark and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _tool_result(message: ChatMessage, names_by_id: dict[str, str]) -> dict[str, Any]:
    name = names_by_id.get(message.tool_call_id or "") or message.name or ""
    text = text_of(message.content)
    # functionResponse.response must be an object: a JSON object result goes as it is,
    # anything else under "content".
    parsed = loads_object(text.encode()) if text.lstrip().startswith("{") else None
    response = parsed if parsed is not None else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(function: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    parameters = function.parameters
    # Gemini rejects an OBJECT schema without properties: a function without arguments
    # is declared without parameters.
    if parameters and parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def _tool_config(chat: ChatRequest) -> dict[str, Any] | None:
    choice = chat.choice()
    forced = chat.forced_tool()
    if forced is not None:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [forced]}}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}.get(str(choice))
    if mode is None:
        return None
    return {"functionCallingConfig": {"mode": mode}}


def _generation_config(chat: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("temperature", chat.temperature),
        ("topP", chat.top_p),
        ("topK", chat.top_k),
        ("maxOutputTokens", chat.output_limit()),
        ("seed", chat.seed),
        ("presencePenalty", chat.presence_penalty),
        ("frequencyPenalty", chat.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    stops = chat.stop_list()
    if stops:
        config["stopSequences"] = stops
    fmt = chat.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.json_schema or {}).get("schema")
        if fmt.type == "json_schema" and isinstance(schema, dict):
            config["responseSchema"] = gemini_schema(schema)
    return config


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


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's ``Schema``: ``$ref``s inlined, unknown keywords dropped."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    converted: dict[str, Any] = _convert(schema, definitions, 0)
    return converted


def _convert(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict):
        return node
    if depth > 32:
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
            out[key] = [str(v) for v in value]
            kind = "string"
        else:
            out[key] = value
    if isinstance(kind, str):
        out["type"] = kind.upper()
    return out
