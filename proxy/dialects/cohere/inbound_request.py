"""A client's Cohere v2 chat body (``POST /v2/chat``) as a ``ChatRequest``.

The inverse of the outbound ``build_request``: messages keep their roles (an assistant's
``tool_plan`` is its text when it calls tools; ``thinking`` blocks its reasoning), content
is a string or ``text`` / ``image_url`` / ``document`` blocks (a document's ``data`` becomes
text), tools keep their shape (``strict_tools`` marks them strict), ``tool_choice``
``REQUIRED``/``NONE`` → ``required``/``none``, ``p``/``k`` → ``top_p``/``top_k``,
``stop_sequences`` → ``stop``, ``response_format`` ``json_object`` (with ``json_schema``) →
JSON mode. A stream always asks for usage: it becomes ``message-end``'s usage, and the
ledger's.
"""

from __future__ import annotations

from typing import Any

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
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    tool_call_id,
)
from ..common import check_model
from ..inbound import (
    json_body,
    json_mode,
    non_empty_string,
    object_at,
    optional_integer,
    optional_number,
    stream_with_usage,
    string_list,
)

_CHOICES = {"REQUIRED": "required", "NONE": "none"}
_NUMBERS = (
    ("temperature", "temperature"),
    ("p", "top_p"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
)
_INTEGERS = (("k", "top_k", 0), ("max_tokens", "max_tokens", 1), ("seed", "seed", None))


def decode_request(body: bytes) -> ChatRequest:
    """Validate a v2 chat body and decode it; raises ``InvalidRequest`` naming the field
    (``messages[1].content[0].type`` …)."""
    payload = json_body(body)
    model = check_model(payload.get("model"))
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list of messages", param="messages")
    request = ChatRequest(
        model=model, messages=[_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    )
    for name, target in _NUMBERS:
        setattr(request, target, optional_number(payload.get(name), name))
    for name, target, minimum in _INTEGERS:
        setattr(request, target, optional_integer(payload.get(name), name, minimum))
    stops = payload.get("stop_sequences")
    if stops is not None:
        request.stop = string_list(stops, "stop_sequences") or None
    request.tools = _tools(payload.get("tools"), payload.get("strict_tools") is True) or None
    choice = payload.get("tool_choice")
    if choice is not None:
        if choice not in _CHOICES:
            raise InvalidRequest(
                f"`tool_choice` must be 'REQUIRED' or 'NONE', not {choice!r}", param="tool_choice"
            )
        request.tool_choice = _CHOICES[choice]
    request.response_format = _response_format(payload.get("response_format"))
    if payload.get("logprobs") is True:
        request.logprobs = True
    if payload.get("stream") is True:
        # The usage report becomes message-end's usage.
        stream_with_usage(request)
    return request


def _message(value: Any, where: str) -> Message:
    message = object_at(value, where)
    role = message.get("role")
    content = message.get("content")
    if role == "system":
        return Message(role="system", content=_text(content, f"{where}.content"))
    if role == "user":
        return Message(role="user", content=_user_content(content, f"{where}.content"))
    if role == "assistant":
        return _assistant(message, where)
    if role == "tool":
        call_id = non_empty_string(message.get("tool_call_id"), f"{where}.tool_call_id")
        return Message(
            role="tool", tool_call_id=call_id, content=_text(content, f"{where}.content")
        )
    raise InvalidRequest(
        f"`{where}.role` must be one of system, user, assistant, tool; not {role!r}",
        param=f"{where}.role",
    )


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise InvalidRequest(f"`{where}` must be a string or a list of content blocks", param=where)
    return content


def _text(content: Any, where: str) -> str:
    """A system or tool message's content: a string, or its text and document blocks."""
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for j, block in enumerate(_blocks(content, where)):
        kind = block.get("type")
        if kind == "text":
            texts.append(_block_text(block, f"{where}[{j}]"))
        elif kind == "document":
            texts.append(_document(block, f"{where}[{j}]"))
        else:
            raise InvalidRequest(
                f"`{where}[{j}].type` {kind!r} is not one of text, document",
                param=f"{where}[{j}].type",
            )
    return "".join(texts)


def _block_text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"`{where}.text` must be a string", param=f"{where}.text")
    return text


def _document(block: dict[str, Any], where: str) -> str:
    """A document block as text: its ``data`` string, or its fields as JSON (Cohere's
    documents are objects such as ``{"title", "snippet"}``)."""
    document = object_at(block.get("document"), f"{where}.document")
    data = document.get("data")
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return orjson.dumps(data).decode()
    raise InvalidRequest(
        f"`{where}.document.data` must be a string or an object", param=f"{where}.document.data"
    )


def _user_content(content: Any, where: str) -> str | list[Part]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[Part] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}[{j}]"
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(text=_block_text(block, at)))
        elif kind == "document":
            parts.append(TextPart(text=_document(block, at)))
        elif kind == "image_url":
            image = object_at(block.get("image_url"), f"{at}.image_url")
            url = non_empty_string(image.get("url"), f"{at}.image_url.url")
            detail = image.get("detail")
            parts.append(
                ImagePart(
                    image_url=ImageURL(url=url, detail=detail if isinstance(detail, str) else None)
                )
            )
        else:
            raise InvalidRequest(
                f"`{at}.type` {kind!r} is not one of text, image_url, document",
                param=f"{at}.type",
            )
    return parts


def _assistant(message: dict[str, Any], where: str) -> Message:
    content = message.get("content")
    texts: list[str] = []
    thinking: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for j, block in enumerate(_blocks(content, f"{where}.content")):
            kind = block.get("type")
            if kind == "text":
                texts.append(_block_text(block, f"{where}.content[{j}]"))
            elif kind == "thinking" and isinstance(block.get("thinking"), str):
                thinking.append(block["thinking"])
    calls = _calls(message.get("tool_calls"), f"{where}.tool_calls")
    plan = message.get("tool_plan")
    # The outbound face sends an assistant's text as its tool plan when it calls tools.
    if not texts and calls and isinstance(plan, str) and plan:
        texts.append(plan)
    return Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content="".join(thinking) or None,
    )


def _calls(value: Any, where: str) -> list[ToolCall]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"`{where}` must be a list of tool calls", param=where)
    calls: list[ToolCall] = []
    for j, item in enumerate(value):
        call = object_at(item, f"{where}[{j}]")
        function = object_at(call.get("function"), f"{where}[{j}].function")
        name = non_empty_string(function.get("name"), f"{where}[{j}].function.name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        elif not isinstance(arguments, str):
            arguments = "{}"
        ident = call.get("id")
        calls.append(
            ToolCall(
                id=ident if isinstance(ident, str) and ident else tool_call_id(),
                function=FunctionCall(name=name, arguments=arguments or "{}"),
            )
        )
    return calls


def _tools(value: Any, strict: bool) -> list[Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("`tools` must be a list of tools", param="tools")
    tools: list[Tool] = []
    for i, item in enumerate(value):
        function = object_at(object_at(item, f"tools[{i}]").get("function"), f"tools[{i}].function")
        name = non_empty_string(function.get("name"), f"tools[{i}].function.name")
        description = function.get("description")
        parameters = function.get("parameters")
        spec = FunctionSpec(
            name=name,
            description=description if isinstance(description, str) and description else None,
            parameters=parameters if isinstance(parameters, dict) else None,
            strict=True if strict else None,
        )
        tools.append(Tool(function=spec))
    return tools


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    fmt = object_at(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind != "json_object":
        raise InvalidRequest(
            f"`response_format.type` must be 'text' or 'json_object', not {kind!r}",
            param="response_format.type",
        )
    return json_mode(fmt.get("json_schema"))
