"""A client's Messages request (``POST /v1/messages``) as a ``ChatRequest``.

``system`` → a system message (its text blocks joined by newlines); user text and image
blocks → content parts (a base64 source → a data URL), text ``document`` sources → text;
``tool_result`` blocks → ``tool`` messages placed before the user's own parts (OpenAI wants
tool results right after the assistant's calls); assistant ``tool_use`` → ``tool_calls``;
``max_tokens``, ``temperature``, ``top_p``, ``stop_sequences`` → ``stop``,
``metadata.user_id`` → ``user``, custom ``tools`` and ``tool_choice``
(``disable_parallel_tool_use`` → ``parallel_tool_calls: false``). A stream always asks for
usage: it becomes ``message_delta``'s usage, and the ledger's.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ...errors import InvalidRequest
from ...model import (
    ChatRequest,
    FunctionCall,
    FunctionSpec,
    ImagePart,
    ImageURL,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
)
from ..common import check_model
from ..inbound import json_body, optional_number, positive_integer, stream_with_usage, string_list

_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


class _ModelField(msgspec.Struct):
    model: str


def decode_request(body: bytes) -> ChatRequest:
    """Validate a Messages body and decode it; raises ``InvalidRequest`` naming the field."""
    payload = json_body(body)
    if not isinstance(payload.get("messages"), list):
        raise InvalidRequest("`messages` must be a list of messages", param="messages")
    max_tokens = positive_integer(payload.get("max_tokens"), "max_tokens")
    messages = _messages(payload)
    model = _model(payload.get("model"))
    if not messages:
        raise InvalidRequest("`messages` must hold at least one message", param="messages")
    request = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=optional_number(payload.get("temperature"), "temperature"),
        top_p=optional_number(payload.get("top_p"), "top_p"),
    )
    stop = payload.get("stop_sequences")
    if stop:
        request.stop = string_list(stop, "stop_sequences")
    metadata = payload.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if user:
        request.user = str(user)
    tools = payload.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list of tools", param="tools")
    request.tools = [_tool(t) for t in tools if _is_custom(t)] or None
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            request.tool_choice = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in _CHOICES:
            request.tool_choice = _CHOICES[kind]
        if choice.get("disable_parallel_tool_use") and request.tools:
            request.parallel_tool_calls = False
    if payload.get("stream"):
        # The usage report becomes message_delta's usage.
        stream_with_usage(request)
    return request


def _model(value: Any) -> str:
    try:
        model = msgspec.convert({"model": value}, _ModelField).model
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}", param="model") from exc
    check_model(model)
    return model


def _messages(payload: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []
    system = payload.get("system")
    if system:
        messages.append(Message(role="system", content=_text(system)))
    for message in payload["messages"]:
        if not isinstance(message, dict):
            raise InvalidRequest("every message must be an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            messages.append(_assistant(content))
        elif role == "user":
            messages.extend(_user(content))
        else:
            raise InvalidRequest(f"unknown message role {role!r}", param="messages")
    return messages


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise InvalidRequest(
            "message content must be a string or a list of content blocks", param="messages"
        )
    return content


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        str(b.get("text", "")) for b in content or () if isinstance(b, dict) and "text" in b
    )


def _assistant(content: Any) -> Message:
    if isinstance(content, str):
        return Message(role="assistant", content=content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = FunctionCall(name=str(block.get("name") or ""), arguments=arguments)
            calls.append(ToolCall(id=str(block.get("id") or ""), function=function))
    return Message(
        role="assistant",
        content="".join(texts) if texts else None,
        tool_calls=calls or None,
    )


def _user(content: Any) -> list[Message]:
    if isinstance(content, str):
        return [Message(role="user", content=content)]
    out: list[Message] = []
    parts: list[Part] = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "tool_result":
            # OpenAI wants the tool results right after the assistant's calls.
            result = block.get("content")
            out.append(
                Message(
                    role="tool",
                    tool_call_id=block.get("tool_use_id"),
                    content=result if isinstance(result, str) else _text(result),
                )
            )
        elif kind == "text":
            parts.append(TextPart(text=block.get("text") or ""))
        elif kind == "image":
            source = _source(block)
            if source.get("type") == "base64":
                url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            else:
                url = str(source.get("url") or "")
            parts.append(ImagePart(image_url=ImageURL(url=url)))
        elif kind == "document":
            source = _source(block)
            if source.get("type") == "text":
                parts.append(TextPart(text=source.get("data") or ""))
    if parts:
        texts = [p.text for p in parts if isinstance(p, TextPart)]
        # Text alone is sent as a plain string, as most OpenAI-format servers expect.
        joined = "".join(texts) if len(texts) == len(parts) else parts
        out.append(Message(role="user", content=joined))
    return out


def _source(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    return source if isinstance(source, dict) else {}


def _is_custom(tool: Any) -> bool:
    # Server tools (web search, bash …) have a type; only custom tools have a place in chat.
    return isinstance(tool, dict) and tool.get("type") in (None, "custom")


def _tool(tool: dict[str, Any]) -> Tool:
    return Tool(
        function=FunctionSpec(
            name=str(tool.get("name") or ""),
            description=tool.get("description") or None,
            parameters=tool.get("input_schema") or {"type": "object", "properties": {}},
        )
    )
