"""OpenAI chat request → Cohere v2 ``/v2/chat`` body.

Cohere v2 is close to OpenAI's shape: messages keep their roles and tool arguments stay JSON
text. What differs: sampling names (``p``, ``k``, ``stop_sequences``), ``tool_choice`` (only
``REQUIRED``/``NONE``), an assistant turn that calls tools carries its text as ``tool_plan``,
and user content takes only text and image parts.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import AudioPart, ChatRequest, FilePart, ImagePart, Message, Part, TextPart
from ..common import unsupported

PROVIDER = "cohere/"


def build_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The Cohere v2 chat body for ``request``; raises ``InvalidRequest`` for what Cohere
    cannot carry (more than one choice, roles and content parts it has no place for)."""
    if request.n is not None and request.n > 1:
        raise InvalidRequest(f"{PROVIDER} models return one choice: `n` must be 1", param="n")
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m, f"messages[{i}]") for i, m in enumerate(request.messages)],
        "stream": bool(request.stream),
    }
    tools = request.tool_list()
    forced = request.forced_tool()
    if forced is not None:
        # Cohere cannot name the tool to call: offer only that one, and require a call.
        tools = [t for t in tools if t.function.name == forced]
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.function.name,
                    "description": t.function.description or "",
                    "parameters": t.function.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
        if any(t.function.strict for t in tools):
            body["strict_tools"] = True
    choice = request.choice()
    if forced is not None or choice in ("required", "any"):
        body["tool_choice"] = "REQUIRED"
    elif choice == "none":
        body["tool_choice"] = "NONE"
    for key, value in (
        ("temperature", request.temperature),
        ("p", request.top_p),
        ("k", request.top_k),
        ("max_tokens", request.output_limit()),
        ("seed", request.seed),
        ("presence_penalty", request.presence_penalty),
        ("frequency_penalty", request.frequency_penalty),
    ):
        if value is not None:
            body[key] = value
    stops = request.stop_list()
    if stops:
        body["stop_sequences"] = stops
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        response_format: dict[str, Any] = {"type": "json_object"}
        schema = (fmt.json_schema or {}).get("schema")
        if fmt.type == "json_schema" and isinstance(schema, dict):
            response_format["json_schema"] = schema
        body["response_format"] = response_format
    return body


def _message(message: Message, where: str) -> dict[str, Any]:
    role = message.role
    if role in ("system", "developer"):
        return {"role": "system", "content": message.text()}
    if role == "user":
        return {"role": "user", "content": _user_content(message.content, where)}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = message.text()
        if message.tool_calls:
            # Cohere's assistant turn that calls tools carries its text as the tool plan.
            if text:
                out["tool_plan"] = text
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.arguments_text()},
                }
                for call in message.tool_calls
            ]
        else:
            out["content"] = text
        return out
    if role in ("tool", "function"):
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or message.name or "",
            "content": message.text(),
        }
    raise unsupported(f"{where}.role", role, PROVIDER)


def _user_content(content: str | list[Part] | None, where: str) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.image_url.url}
            if part.image_url.detail:
                image["detail"] = part.image_url.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise unsupported(f"{where}.content[{j}].type", _part_type(part), PROVIDER)
    return parts


def _part_type(part: AudioPart | FilePart) -> str:
    """The part's ``type`` on OpenAI's wire, for the error message."""
    return "input_audio" if isinstance(part, AudioPart) else "file"
