"""A ``ChatRequest`` as an Anthropic Messages request body.

System and developer messages become ``system`` blocks; user content parts become text /
image blocks (data URLs → ``base64`` sources, other URLs → ``url`` sources); assistant
``tool_calls`` become ``tool_use`` blocks; ``tool`` messages become ``tool_result`` blocks in a
user turn (consecutive same-role turns are merged, as Anthropic requires alternation);
``tools``/``tool_choice``/``parallel_tool_calls``, ``temperature``, ``top_p``, ``top_k``,
``stop`` → ``stop_sequences``, ``user`` → ``metadata.user_id``; ``cache_control`` on parts and
tools is kept. ``max_tokens`` is required by Anthropic: the client's, else the target's
``max_output_tokens``, else 4096.

JSON mode has no Anthropic switch, so it is emulated: ``response_format: json_object``
appends ``JSON_INSTRUCTION`` to the system prompt; ``json_schema`` forces a tool named
``JSON_TOOL`` whose input schema is the schema (its input goes back as the message text).
"""

from __future__ import annotations

from typing import Any

import orjson

from ...model import ChatRequest, ImagePart, Message, Part, TextPart, Tool
from ..base import Target
from ..common import append_turn, arguments_value, parse_data_url

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_response"
JSON_INSTRUCTION = (
    "Respond only with a single valid JSON object. Do not add any text before or after it."
)


def json_tool_requested(request: ChatRequest) -> bool:
    """Whether the reply's ``JSON_TOOL`` call is to come back as the message text."""
    return request.response_format is not None and request.response_format.type == "json_schema"


def messages_request(request: ChatRequest, target: Target) -> dict[str, Any]:
    """``request`` as an Anthropic Messages request body (before JSON encoding)."""
    system, messages = _convert_messages(request.messages)
    out: dict[str, Any] = {"model": target.model, "messages": messages}
    out["max_tokens"] = request.output_limit() or target.max_output_tokens or DEFAULT_MAX_TOKENS
    tools = [_tool(t) for t in request.tools or () if t.type == "function"]
    tool_choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
    response_format = request.response_format
    kind = response_format.type if response_format is not None else None
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_INSTRUCTION})
    elif kind == "json_schema" and response_format is not None:
        spec = response_format.json_schema or {}
        tools.append(
            {
                "name": JSON_TOOL,
                "description": "Respond with a JSON object matching this schema.",
                "input_schema": spec.get("schema") or {"type": "object"},
            }
        )
        tool_choice = {"type": "tool", "name": JSON_TOOL}
    if system:
        out["system"] = system
    if tools:
        out["tools"] = tools
    # A tool_choice without tools is an Anthropic 400, except "none".
    if tool_choice is not None and (tools or tool_choice.get("type") == "none"):
        out["tool_choice"] = tool_choice
    for name, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("top_k", request.top_k),
    ):
        if value is not None:
            out[name] = value
    if request.stop:
        out["stop_sequences"] = request.stop_list()
    if request.user:
        out["metadata"] = {"user_id": request.user}
    if request.stream:
        out["stream"] = True
    return out


def _convert_messages(
    messages: list[Message],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            system.extend(_content_blocks(message.content))
        elif role in ("tool", "function"):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or message.name or "",
                "content": _content_blocks(message.content) or "",
            }
            append_turn(out, "user", [result])
        elif role == "assistant":
            blocks = _content_blocks(message.content)
            for call in message.tool_calls or ():
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.function.name,
                        "input": _arguments(call.function.arguments),
                    }
                )
            append_turn(out, "assistant", blocks)
        else:
            append_turn(out, "user", _content_blocks(message.content))
    return system, out


def _content_blocks(content: str | list[Part] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        block: dict[str, Any]
        if isinstance(part, TextPart):
            if not part.text:
                continue
            block = {"type": "text", "text": part.text}
        elif isinstance(part, ImagePart):
            block = _image_block(part.image_url.url)
        else:
            # Audio and files have no place in a Messages request; they are left out.
            continue
        if part.cache_control is not None:
            block["cache_control"] = part.cache_control
        blocks.append(block)
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is not None:
        mime, data = parsed
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _arguments(arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    """A tool call's arguments as ``tool_use.input``, which must be an object: text that is
    not JSON, or JSON that is not an object, is wrapped rather than refused."""
    try:
        value = arguments_value(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _tool(tool: Tool) -> dict[str, Any]:
    function = tool.function
    out: dict[str, Any] = {
        "name": function.name,
        "input_schema": function.parameters or {"type": "object", "properties": {}},
    }
    if function.description:
        out["description"] = function.description
    if tool.cache_control is not None:
        out["cache_control"] = tool.cache_control
    return out


def _tool_choice(
    choice: str | dict[str, Any] | None, parallel: bool | None
) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        out = {"type": "tool", "name": name} if name else None
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out
