"""A ``ChatRequest`` as a Gemini ``generateContent`` body.

Messages become ``contents`` (roles ``user``/``model``; tool results are
``functionResponse`` parts in a user turn) and ``systemInstruction``; tools become
``functionDeclarations`` with their JSON Schemas cut down to Gemini's ``Schema``;
``tool_choice`` becomes ``toolConfig``, sampling and JSON mode ``generationConfig``. A tool
call id carrying a ``thoughtSignature`` (``<id>__thought__<signature>``) gives the signature
back to Gemini.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import (
    AudioPart,
    ChatRequest,
    FilePart,
    FunctionSpec,
    ImagePart,
    Message,
    TextPart,
)
from ..common import (
    append_turn,
    arguments_object,
    loads_object,
    mime_of_url,
    parse_data_url,
    system_text_blocks,
    unsupported,
)
from .schema import gemini_schema

PROVIDER = "gemini/"
# Separates the tool call id the client sees from the thoughtSignature riding inside it.
SIGNATURE_MARK = "__thought__"


def model_path(model: str) -> str:
    """The model's resource path in Gemini's URLs (``models/<model>`` unless already one)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def build_request(chat: ChatRequest) -> dict[str, Any]:
    """The ``generateContent`` body for ``chat``; raises ``InvalidRequest`` for what Gemini
    cannot carry (``n`` over 1, an unknown role, tool arguments that are not an object)."""
    if chat.n is not None and chat.n > 1:
        raise InvalidRequest(f"{PROVIDER} models return one choice here: `n` must be 1", param="n")
    system = system_text_blocks(chat.messages)
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.role
        if role in ("system", "developer"):
            continue
        if role == "user":
            append_turn(contents, "user", _user_parts(message), "parts")
        elif role == "assistant":
            append_turn(contents, "model", _assistant_parts(message, where, names_by_id), "parts")
        elif role in ("tool", "function"):
            append_turn(contents, "user", [_tool_result(message, names_by_id)], "parts")
        else:
            raise unsupported(f"{where}.role", role, PROVIDER)
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


def _user_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.parts():
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_media(part.image_url.url))
        elif isinstance(part, AudioPart):
            audio = part.input_audio
            mime = f"audio/{audio.format}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio.data}})
        elif isinstance(part, FilePart):
            file = part.file
            if file.file_data:
                parts.append(_media(file.file_data, "application/pdf"))
            elif file.file_id:
                uri = file.file_id
                parts.append(
                    {"fileData": {"mimeType": mime_of_url(uri, "application/pdf"), "fileUri": uri}}
                )
    return parts


def _media(url: str, default_mime: str = "image/jpeg") -> dict[str, Any]:
    inline = parse_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    return {"fileData": {"mimeType": mime_of_url(url, default_mime), "fileUri": url}}


def _assistant_parts(
    message: Message, where: str, names_by_id: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = message.text()
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


def _tool_result(message: Message, names_by_id: dict[str, str]) -> dict[str, Any]:
    # Gemini matches a result to its call by name: the name of the call with this id.
    name = names_by_id.get(message.tool_call_id or "") or message.name or ""
    text = message.text()
    # functionResponse.response must be an object: a JSON object result goes as it is,
    # anything else under "content".
    parsed = loads_object(text.encode()) if text.lstrip().startswith("{") else None
    response = parsed if parsed is not None else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(function: FunctionSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    parameters = function.parameters
    # Gemini rejects an OBJECT schema without properties: a function without arguments
    # is declared without parameters.
    if parameters and parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}


def _tool_config(chat: ChatRequest) -> dict[str, Any] | None:
    forced = chat.forced_tool()
    if forced is not None:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [forced]}}
    choice = chat.choice()
    mode = _MODES.get(choice) if isinstance(choice, str) else None
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
