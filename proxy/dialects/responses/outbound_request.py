"""A ``ChatRequest`` as an OpenAI Responses request (``POST {base}/responses``), for
deployments served through the Responses API (LiteLLM's ``openai/responses/<model>``).

``system`` messages → ``instructions`` (joined by blank lines); other messages → ``input``
items: message items with ``input_text`` / ``input_image`` / ``input_file`` parts (an
assistant's text as ``output_text``), assistant ``tool_calls`` → ``function_call`` items,
``tool`` messages → ``function_call_output`` items; function ``tools`` (``strict: false``
unless the client said otherwise: Responses makes tools strict by default, chat does not)
and ``tool_choice``; ``max_completion_tokens`` / ``max_tokens`` → ``max_output_tokens``;
``temperature``, ``top_p``, ``user``, ``parallel_tool_calls``; ``reasoning_effort`` →
``reasoning.effort``; ``response_format`` → ``text.format``. The gateway keeps no state
upstream: ``store`` is always false. Responses has no ``stop``, ``seed``, penalties,
``logprobs`` or ``top_k``: they are left out; ``n`` above 1 is refused.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model import (
    AudioPart,
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
)
from ..base import Target
from ..common import unsupported


def responses_request(request: ChatRequest, target: Target) -> dict[str, Any]:
    """``request`` as a Responses request body (before JSON encoding)."""
    if request.n is not None and request.n > 1:
        raise InvalidRequest("responses/ deployments return one output; `n` must be 1", param="n")
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        if message.role == "system":
            text = message.text()
            if text:
                instructions.append(text)
            continue
        items.extend(_items(message, f"messages[{i}]"))
    out: dict[str, Any] = {"model": target.model, "input": items}
    if instructions:
        out["instructions"] = "\n\n".join(instructions)
    tools = [_tool(tool) for tool in request.tool_list() if tool.type == "function"]
    if tools:
        out["tools"] = tools
        if request.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = request.parallel_tool_calls
    choice = _tool_choice(request.choice())
    if choice is not None:
        out["tool_choice"] = choice
    if (limit := request.output_limit()) is not None:
        out["max_output_tokens"] = limit
    for name, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("user", request.user),
    ):
        if value is not None:
            out[name] = value
    if request.reasoning_effort:
        out["reasoning"] = {"effort": request.reasoning_effort}
    text_format = _text_format(request.response_format)
    if text_format is not None:
        out["text"] = {"format": text_format}
    if request.stream:
        out["stream"] = True
    out["store"] = False
    return out


def _items(message: Message, where: str) -> list[dict[str, Any]]:
    role = message.role
    if role in ("tool", "function"):
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id or message.name or "",
                "output": message.text(),
            }
        ]
    if role == "assistant":
        items: list[dict[str, Any]] = []
        content = _assistant_content(message.content)
        if content:
            items.append({"type": "message", "role": "assistant", "content": content})
        for call in message.tool_calls or ():
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.function.name,
                    "arguments": call.arguments_text(),
                }
            )
        return items
    if role in ("user", "developer"):
        return [{"type": "message", "role": role, "content": _content(message.content, where)}]
    raise unsupported(f"{where}.role", role, "responses")


def _assistant_content(content: str | list[Part] | None) -> str | list[dict[str, Any]]:
    # Responses takes an assistant's earlier output only as output_text.
    if isinstance(content, list):
        return [
            {"type": "output_text", "text": part.text}
            for part in content
            if isinstance(part, TextPart) and part.text
        ]
    return content or ""


def _content(content: str | list[Part] | None, where: str) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            image = part.image_url
            # ``detail`` is required by the Responses schema; chat's default is auto.
            parts.append(
                {"type": "input_image", "image_url": image.url, "detail": image.detail or "auto"}
            )
        elif isinstance(part, FilePart):
            parts.append(_file(part, f"{where}.content[{k}]"))
        elif isinstance(part, AudioPart):
            raise unsupported(f"{where}.content[{k}].type", "input_audio", "responses")
    return parts


def _file(part: FilePart, where: str) -> dict[str, Any]:
    file = part.file
    out: dict[str, Any] = {"type": "input_file"}
    if file.file_id:
        out["file_id"] = file.file_id
    elif file.file_data:
        out["file_data"] = file.file_data
    else:
        raise InvalidRequest(f"{where}: a file needs `file_id` or `file_data`", param=where)
    if file.filename:
        out["filename"] = file.filename
    return out


def _tool(tool: Tool) -> dict[str, Any]:
    function = tool.function
    out: dict[str, Any] = {
        "type": "function",
        "name": function.name,
        "parameters": function.parameters or {"type": "object", "properties": {}},
        "strict": bool(function.strict),
    }
    if function.description:
        out["description"] = function.description
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        return {"type": "function", "name": name} if name else None
    return choice


def _text_format(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None:
        return None
    if response_format.type == "json_object":
        return {"type": "json_object"}
    if response_format.type != "json_schema":
        return None
    spec = response_format.json_schema or {}
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": spec.get("name") or "response",
        "schema": spec.get("schema") or {"type": "object"},
    }
    if spec.get("description"):
        out["description"] = spec["description"]
    if spec.get("strict") is not None:
        out["strict"] = spec["strict"]
    return out
