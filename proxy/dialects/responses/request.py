"""A Responses request body as a ``ChatRequest`` (``decode_request``).

Mapping: ``instructions`` → a system message; ``input`` (a string, or message /
``function_call`` / ``function_call_output`` items with ``input_text`` / ``input_image`` /
``input_file`` parts) → messages; function ``tools`` and ``tool_choice`` → chat's;
``max_output_tokens`` → ``max_completion_tokens``; ``text.format`` json_object / json_schema
→ ``response_format``; ``reasoning.effort`` → ``reasoning_effort``. The gateway keeps no
state, so ``previous_response_id``, ``conversation`` and ``background`` are refused (send the
whole conversation as ``input``), as are hosted tools (web search, file search, ...).
``metadata`` is only echoed in the response, never sent upstream.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import InvalidRequest
from ...model import (
    FilePart,
    FileRef,
    FunctionCall,
    FunctionSpec,
    ImagePart,
    ImageURL,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from ..common import check_model
from ..inbound import check_body, stream_with_usage
from .shell import Echo, ResponsesChatRequest


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


def decode_request(body: bytes) -> ResponsesChatRequest:
    """Validate a ``POST /v1/responses`` body and map it onto a ``ChatRequest`` (which also
    carries what the response echoes); raises ``InvalidRequest`` naming the bad field."""
    check_body(body)
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    chat = _to_chat(request)
    chat.attach(_echo(request))
    return chat


def _to_chat(request: ResponsesRequest) -> ResponsesChatRequest:
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
    messages: list[Message] = []
    if request.instructions:
        messages.append(Message(role="system", content=request.instructions))
    if isinstance(request.input, str):
        messages.append(Message(role="user", content=request.input))
    else:
        for i, item in enumerate(request.input):
            _add_item(messages, item, f"input[{i}]")
    if not messages:
        raise InvalidRequest("`input` holds no message", param="input")
    chat = ResponsesChatRequest(model=request.model, messages=messages)
    if request.tools:
        chat.tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
        # Chat only takes parallel_tool_calls alongside tools.
        chat.parallel_tool_calls = request.parallel_tool_calls
    if request.tool_choice is not None:
        chat.tool_choice = _tool_choice(request.tool_choice)
    chat.max_completion_tokens = request.max_output_tokens
    chat.temperature = request.temperature
    chat.top_p = request.top_p
    chat.user = request.user
    if request.reasoning is not None and request.reasoning.effort:
        chat.reasoning_effort = request.reasoning.effort
    chat.response_format = _response_format(request.text)
    if request.stream:
        # response.completed carries the usage.
        stream_with_usage(chat)
    _check_chat(chat)
    return chat


def _check_chat(chat: ResponsesChatRequest) -> None:
    """The checks every chat request passes (the chat parse stage's, with its messages)."""
    check_model(chat.model)
    if chat.max_completion_tokens is not None and chat.max_completion_tokens < 1:
        raise InvalidRequest(
            "`max_completion_tokens` must be at least 1", param="max_completion_tokens"
        )


def _echo(request: ResponsesRequest) -> Echo:
    text_format = request.text.format if request.text is not None else None
    return Echo(
        model=request.model,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        metadata=request.metadata,
        parallel_tool_calls=request.parallel_tool_calls,
        reasoning_effort=request.reasoning.effort if request.reasoning else None,
        temperature=request.temperature,
        text_format=msgspec.to_builtins(text_format) if text_format is not None else None,
        tool_choice=request.tool_choice,
        tools=request.tools,
        top_p=request.top_p,
        user=request.user,
    )


def _response_format(text: TextConfig | None) -> ResponseFormat | None:
    text_format = text.format if text is not None else None
    if text_format is None:
        return None
    if text_format.type == "json_object":
        return ResponseFormat(type="json_object")
    if text_format.type != "json_schema":
        return None
    schema: dict[str, Any] = {
        "name": text_format.name or "response",
        "schema": text_format.schema or {"type": "object"},
    }
    if text_format.description:
        schema["description"] = text_format.description
    if text_format.strict is not None:
        schema["strict"] = text_format.strict
    return ResponseFormat(type="json_schema", json_schema=schema)


def _add_item(messages: list[Message], item: dict[str, Any], where: str) -> None:
    kind = item.get("type") or ("message" if "role" in item else None)
    last = messages[-1] if messages else None
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text = content if isinstance(content, str) else _assistant_text(content, where)
            # Consecutive assistant texts are one chat turn, unless tool calls came between.
            if last is not None and last.role == "assistant" and last.tool_calls is None:
                last.content = last.text() + text
            else:
                messages.append(Message(role="assistant", content=text))
        elif role in ("user", "system", "developer"):
            messages.append(Message(role=str(role), content=_user_content(content, where)))
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
    elif kind == "function_call":
        call = ToolCall(
            id=str(item.get("call_id") or ""),
            function=FunctionCall(
                name=str(item.get("name") or ""), arguments=str(item.get("arguments") or "{}")
            ),
        )
        # Parallel calls (and a call after the assistant's text) are one assistant turn.
        if last is not None and last.role == "assistant":
            last.tool_calls = [*(last.tool_calls or ()), call]
        else:
            messages.append(Message(role="assistant", content=None, tool_calls=[call]))
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _text_of(_user_content(output, where))
        messages.append(
            Message(role="tool", tool_call_id=str(item.get("call_id") or ""), content=text)
        )
    elif kind == "reasoning":
        return  # a previous turn's reasoning: chat completions has no place for it
    else:
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported", param=f"{where}.type"
        )


def _user_content(content: Any, where: str) -> str | list[Part]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    parts: list[Part] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(text=str(part.get("text", ""))))
        elif kind == "input_image":
            url = part.get("image_url")
            if not url or not isinstance(url, str):
                raise InvalidRequest(
                    f"{where}.content[{k}]: images are taken by `image_url` (a URL or a data "
                    "URL); file ids are not supported",
                    param=f"{where}.content",
                )
            detail = part.get("detail")
            parts.append(
                ImagePart(image_url=ImageURL(url=url, detail=str(detail) if detail else None))
            )
        elif kind == "input_file" and part.get("file_data"):
            filename = part.get("filename")
            file = FileRef(
                file_data=str(part["file_data"]), filename=str(filename) if filename else None
            )
            parts.append(FilePart(file=file))
        else:
            raise InvalidRequest(
                f"{where}.content[{k}]: content of type {kind!r} is not supported",
                param=f"{where}.content",
            )
    return parts


def _text_of(content: str | list[Part]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


def _assistant_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    return "".join(
        str(part.get("text") or part.get("refusal") or "")
        for part in content
        if isinstance(part, dict)
    )


def _tool(tool: dict[str, Any], where: str) -> Tool:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"{where}: tools of type {tool.get('type')!r} are not supported (function tools only)",
            param=f"{where}.type",
        )
    name = tool.get("name")
    if not isinstance(name, str):
        raise InvalidRequest(f"{where}.name is required", param=f"{where}.name")
    return Tool(
        function=FunctionSpec(
            name=name,
            description=tool.get("description"),
            parameters=tool.get("parameters"),
            strict=tool.get("strict"),
        )
    )


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        f"tool_choice of type {choice.get('type')!r} is not supported", param="tool_choice"
    )
