"""A Responses request as an OpenAI chat-completions body (``to_chat``).

Mapping: ``instructions`` → a system message; ``input`` (a string, or message /
``function_call`` / ``function_call_output`` items with ``input_text`` / ``input_image``
parts) → messages; function ``tools`` and ``tool_choice`` → chat's; ``max_output_tokens`` →
``max_completion_tokens``; ``text.format`` json_object / json_schema → ``response_format``;
``reasoning.effort`` → ``reasoning_effort``. The gateway keeps no state, so
``previous_response_id``, ``conversation`` and ``background`` are refused (send the whole
conversation as ``input``), as are hosted tools (web search, file search, ...).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest
from .translate import text_of


class TextFormat(msgspec.Struct, kw_only=True):
    type: str = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True):
    effort: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    background: bool | None = None


_decoder = msgspec.json.Decoder(ResponsesRequest)


def decode_request(body: bytes) -> ResponsesRequest:
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


def to_chat(request: ResponsesRequest) -> bytes:
    """The OpenAI chat-completions body for a Responses request."""
    if request.previous_response_id or request.conversation is not None:
        raise InvalidRequest(
            "the gateway stores no responses: send the whole conversation in `input` "
            "instead of `previous_response_id` / `conversation`",
            param="previous_response_id" if request.previous_response_id else "conversation",
        )
    if request.background:
        raise InvalidRequest("background responses are not supported", param="background")
    if request.input is None:
        raise InvalidRequest("`input` is required", param="input")
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        for i, item in enumerate(request.input):
            _add_item(messages, item, f"input[{i}]")
    if not messages:
        raise InvalidRequest("`input` holds no message", param="input")
    chat: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
        if request.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(request.tool_choice)
    if request.max_output_tokens is not None:
        chat["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        chat["temperature"] = request.temperature
    if request.top_p is not None:
        chat["top_p"] = request.top_p
    if request.user is not None:
        chat["user"] = request.user
    if request.reasoning is not None and request.reasoning.effort:
        chat["reasoning_effort"] = request.reasoning.effort
    text_format = request.text.format if request.text is not None else None
    if text_format is not None and text_format.type == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif text_format is not None and text_format.type == "json_schema":
        schema: dict[str, Any] = {
            "name": text_format.name or "response",
            "schema": text_format.schema or {"type": "object"},
        }
        if text_format.description:
            schema["description"] = text_format.description
        if text_format.strict is not None:
            schema["strict"] = text_format.strict
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if request.stream:
        # Usage is always asked for: response.completed carries it.
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return orjson.dumps(chat)


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text = content if isinstance(content, str) else _assistant_text(content, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
                last["content"] = (last["content"] or "") + text
            else:
                messages.append({"role": "assistant", "content": text})
        elif role in ("user", "system", "developer"):
            messages.append({"role": role, "content": _user_content(content, where)})
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
    elif kind == "function_call":
        call = {
            "id": str(item.get("call_id") or ""),
            "type": "function",
            "function": {
                "name": str(item.get("name") or ""),
                "arguments": str(item.get("arguments") or "{}"),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else text_of(_user_content(output, where))
        messages.append(
            {"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text}
        )
    elif kind == "reasoning":
        return  # a previous turn's reasoning: chat completions has no place for it
    else:
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported", param=f"{where}.type"
        )


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    parts: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url:
                raise InvalidRequest(
                    f"{where}.content[{k}]: images are taken by `image_url` (a URL or a data "
                    "URL); file ids are not supported",
                    param=f"{where}.content",
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and part.get("file_data"):
            file: dict[str, Any] = {"file_data": part["file_data"]}
            if part.get("filename"):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        else:
            raise InvalidRequest(
                f"{where}.content[{k}]: content of type {kind!r} is not supported",
                param=f"{where}.content",
            )
    return parts


def _assistant_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    texts = []
    for part in content:
        if isinstance(part, dict):
            texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"{where}: tools of type {tool.get('type')!r} are not supported (function tools only)",
            param=f"{where}.type",
        )
    function = {"name": tool.get("name")}
    for field in ("description", "parameters", "strict"):
        if tool.get(field) is not None:
            function[field] = tool[field]
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        f"tool_choice of type {choice.get('type')!r} is not supported", param="tool_choice"
    )
