"""OpenAI chat bodies as Anthropic Messages requests.

System messages become ``system``; user content parts become text / image blocks (data URLs
→ ``base64`` sources, other URLs → ``url`` sources); assistant ``tool_calls`` become
``tool_use`` blocks; ``tool`` messages become ``tool_result`` blocks in a user turn
(consecutive same-role turns are merged, as Anthropic requires alternation);
``tools``/``tool_choice``/``parallel_tool_calls``, ``temperature``, ``top_p``, ``stop`` →
``stop_sequences``, ``user`` → ``metadata.user_id``. ``max_tokens`` is required by
Anthropic: the client's, else the model's ``max_output_tokens``, else 4096.

JSON mode has no Anthropic switch, so it is emulated: ``response_format: json_object``
appends ``JSON_INSTRUCTION`` to the system prompt; ``json_schema`` forces a tool named
``JSON_TOOL`` whose input schema is the schema (its input goes back as the message text).

A ``/v1/messages`` body is not rebuilt: ``with_model`` rewrites only its ``model``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ..formats.translate import append_turn, parse_data_url
from .base import Deployment

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_response"
JSON_INSTRUCTION = (
    "Respond only with a single valid JSON object. Do not add any text before or after it."
)


def build_messages_request(
    body: dict[str, Any], deployment: Deployment, upstream_model: str
) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic Messages request body."""
    system, messages = _convert_messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": upstream_model, "messages": messages}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    info = deployment.info
    default_max = info.max_output_tokens or info.max_tokens or DEFAULT_MAX_TOKENS
    out["max_tokens"] = max_tokens or default_max
    tools = [_tool(t) for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    tool_choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_INSTRUCTION})
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
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
    if tool_choice is not None and (tools or tool_choice.get("type") == "none"):
        out["tool_choice"] = tool_choice
    for name in ("temperature", "top_p", "top_k", "thinking"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("stream"):
        out["stream"] = True
    return out


def _convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_content_blocks(content))
        elif role in ("tool", "function"):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id") or message.get("name") or "",
                "content": _content_blocks(content) or "",
            }
            append_turn(out, "user", [result])
        elif role == "assistant":
            blocks = _content_blocks(content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or "",
                        "name": function.get("name") or "",
                        "input": _arguments(function.get("arguments")),
                    }
                )
            append_turn(out, "assistant", blocks)
        else:
            append_turn(out, "user", _content_blocks(content))
    return system, out


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        block: dict[str, Any] | None = None
        if kind == "text":
            text = part.get("text") or ""
            block = {"type": "text", "text": text} if text else None
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            block = _image_block(url)
        elif kind in ("image", "document", "tool_use", "tool_result", "thinking"):
            block = {k: v for k, v in part.items() if k != "cache_control"}
        if block is None:
            continue
        if part.get("cache_control") is not None:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is not None:
        mime, data = parsed
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": function.get("name") or "",
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out = {"type": "tool", "name": name} if name else None
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def json_tool_requested(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def with_model(native: bytes, model: str) -> bytes:
    fields = _raw_decoder.decode(native)
    fields["model"] = msgspec.Raw(msgspec.json.encode(model))
    return msgspec.json.encode(fields)
