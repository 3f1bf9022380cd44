"""Chat requests as Bedrock Converse requests.

- ``system``/``developer`` messages → ``system``; ``tool`` messages → ``toolResult`` blocks in
  a user turn; assistant ``tool_calls`` → ``toolUse`` blocks; images must be data URLs
  (their base64 goes in ``image.source.bytes``); consecutive turns of one role are merged
  because Converse wants user and assistant to alternate.
- ``tools`` → ``toolConfig.tools[].toolSpec``; ``tool_choice`` auto/required/named →
  ``auto``/``any``/``tool`` (``none`` sends no tools unless the history needs them).
- ``response_format``: Converse has no JSON mode, so ``json_object`` adds an instruction to
  the system prompt, and ``json_schema`` forces a tool whose input schema is the schema
  (``to_converse`` names it, so the reply's translation reads its input as the text).
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import InvalidRequest
from ...model import ChatRequest, ImagePart, Part, TextPart
from ..common import append_turn, arguments_object, parse_data_url, system_text_blocks

JSON_TOOL = "json_response"
JSON_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}")


def model_id(upstream_model: str) -> str:
    """The Converse model id of a deployment's model (``converse/<id>`` also names ``<id>``)."""
    return upstream_model.removeprefix("converse/")


def to_converse(chat: ChatRequest) -> tuple[dict[str, Any], str | None]:
    """The Converse request for a chat request, and the JSON tool's name if forced."""
    if chat.n is not None and chat.n > 1:
        raise InvalidRequest("bedrock/ deployments return one choice; `n` must be 1", param="n")
    system = system_text_blocks(chat.messages)
    turns: list[dict[str, Any]] = []
    used_tools: set[str] = set()
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.role
        blocks: list[dict[str, Any]]
        if role in ("system", "developer"):
            continue
        if role == "user":
            blocks = _user_blocks(message.content, where)
        elif role == "assistant":
            blocks = []
            text = message.text()
            if text:
                blocks.append({"text": text})
            for j, call in enumerate(message.tool_calls or ()):
                used_tools.add(call.function.name)
                tool_use = {
                    "toolUseId": call.id,
                    "name": call.function.name,
                    "input": arguments_object(call, f"{where}.tool_calls[{j}]"),
                }
                blocks.append({"toolUse": tool_use})
        elif role in ("tool", "function"):
            if not message.tool_call_id:
                raise InvalidRequest(
                    f"{where}.tool_call_id is required", param=f"{where}.tool_call_id"
                )
            result = message.text()
            blocks = [
                {
                    "toolResult": {
                        "toolUseId": message.tool_call_id,
                        "content": [{"text": result}] if result else [],
                        "status": "success",
                    }
                }
            ]
            role = "user"
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
        append_turn(turns, role, blocks)
    payload: dict[str, Any] = {"messages": turns}

    json_tool = None
    response_format = chat.response_format
    tool_specs = [
        _tool_spec(t.function.name, t.function.description, t.function.parameters)
        for t in chat.tool_list()
    ]
    tool_choice: dict[str, Any] | None = None
    choice = chat.choice()
    if choice == "required":
        tool_choice = {"any": {}}
    elif choice == "auto":
        tool_choice = {"auto": {}}
    elif (forced := chat.forced_tool()) is not None:
        tool_choice = {"tool": {"name": forced}}
    elif choice == "none" and not used_tools:
        tool_specs = []
    if response_format is not None and response_format.type == "json_object":
        system.append({"text": JSON_INSTRUCTION})
    elif response_format is not None and response_format.type == "json_schema":
        schema = (response_format.json_schema or {}).get("schema") or {"type": "object"}
        json_tool = JSON_TOOL
        tool_specs.append(
            _tool_spec(JSON_TOOL, "Give the answer as this tool's input, in this schema.", schema)
        )
        tool_choice = {"tool": {"name": JSON_TOOL}}
    # Converse refuses toolUse/toolResult blocks unless toolConfig names those tools.
    declared = {spec["toolSpec"]["name"] for spec in tool_specs}
    for name in sorted(used_tools - declared):
        tool_specs.append(_tool_spec(name, None, None))
    if tool_specs:
        tool_config: dict[str, Any] = {"tools": tool_specs}
        if tool_choice is not None:
            tool_config["toolChoice"] = tool_choice
        payload["toolConfig"] = tool_config
    if system:
        payload["system"] = system

    inference: dict[str, Any] = {}
    if (limit := chat.output_limit()) is not None:
        inference["maxTokens"] = limit
    if chat.temperature is not None:
        inference["temperature"] = chat.temperature
    if chat.top_p is not None:
        inference["topP"] = chat.top_p
    if stops := chat.stop_list():
        inference["stopSequences"] = stops
    if inference:
        payload["inferenceConfig"] = inference
    if chat.top_k is not None:
        payload["additionalModelRequestFields"] = {"top_k": chat.top_k}
    if chat.user and _METADATA_VALUE.fullmatch(chat.user):
        payload["requestMetadata"] = {"user": chat.user}
    return payload, json_tool


def _tool_spec(
    name: str, description: str | None, parameters: dict[str, Any] | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "inputSchema": {"json": parameters or {"type": "object", "properties": {}}},
    }
    if description:
        spec["description"] = description
    return {"toolSpec": spec}


def _user_blocks(content: str | list[Part] | None, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part.image_url.url, f"{where}.content[{k}]"))
        else:
            kind = part.__struct_config__.tag
            raise InvalidRequest(
                f"{where}.content[{k}]: part type {kind!r} is not supported by bedrock/",
                param=f"{where}.content",
            )
    return blocks


def _image_block(url: str, where: str) -> dict[str, Any]:
    parts = parse_data_url(url)
    if parts is None:
        raise InvalidRequest(
            f"{where}: bedrock/ takes images as base64 data URLs (data:image/png;base64,...)",
            param=where,
        )
    mime, data = parts
    subtype = mime.rpartition("/")[2].lower()
    image_format = _IMAGE_FORMATS.get(subtype)
    if image_format is None:
        raise InvalidRequest(
            f"{where}: image type {mime!r} is not one of png, jpeg, gif, webp", param=where
        )
    # A blob in Converse's JSON is base64 text, so the client's base64 goes as it is.
    return {"image": {"format": image_format, "source": {"bytes": data}}}
