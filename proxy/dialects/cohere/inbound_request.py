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
    StreamOptions,
    TextPart,
    Tool,
    ToolCall,
    tool_call_id,
)

_MODEL_LIMIT = 256
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
    payload = _payload(body)
    model = payload.get("model")
    if not isinstance(model, str) or not model or len(model) > _MODEL_LIMIT:
        raise InvalidRequest(
            "`model` must be a non-empty string of at most 256 characters", param="model"
        )
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list of messages", param="messages")
    request = ChatRequest(
        model=model, messages=[_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    )
    for name, target in _NUMBERS:
        setattr(request, target, _number(payload, name))
    for name, target, minimum in _INTEGERS:
        setattr(request, target, _integer(payload, name, minimum))
    stops = payload.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest(
                "`stop_sequences` must be a list of strings", param="stop_sequences"
            )
        request.stop = list(stops) or None
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
        request.stream = True
        # Always: the usage report becomes message-end's usage, and the ledger's.
        request.stream_options = StreamOptions(include_usage=True)
    return request


def _payload(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return payload


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{where}` must be an object", param=where)
    return value


def _message(value: Any, where: str) -> Message:
    message = _object(value, where)
    role = message.get("role")
    content = message.get("content")
    if role == "system":
        return Message(role="system", content=_text(content, f"{where}.content"))
    if role == "user":
        return Message(role="user", content=_user_content(content, f"{where}.content"))
    if role == "assistant":
        return _assistant(message, where)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(
                f"`{where}.tool_call_id` must be a non-empty string",
                param=f"{where}.tool_call_id",
            )
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
    document = _object(block.get("document"), f"{where}.document")
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
            image = _object(block.get("image_url"), f"{at}.image_url")
            url = image.get("url")
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    f"`{at}.image_url.url` must be a non-empty string", param=f"{at}.image_url.url"
                )
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
        call = _object(item, f"{where}[{j}]")
        function = _object(call.get("function"), f"{where}[{j}].function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                f"`{where}[{j}].function.name` must be a non-empty string",
                param=f"{where}[{j}].function.name",
            )
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
        function = _object(_object(item, f"tools[{i}]").get("function"), f"tools[{i}].function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                f"`tools[{i}].function.name` must be a non-empty string",
                param=f"tools[{i}].function.name",
            )
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
    fmt = _object(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind != "json_object":
        raise InvalidRequest(
            f"`response_format.type` must be 'text' or 'json_object', not {kind!r}",
            param="response_format.type",
        )
    schema = fmt.get("json_schema")
    if isinstance(schema, dict):
        return ResponseFormat(
            type="json_schema", json_schema={"name": "response", "schema": schema}
        )
    return ResponseFormat(type="json_object")


def _number(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"`{name}` must be a number", param=name)
    return float(value)


def _integer(payload: dict[str, Any], name: str, minimum: int | None) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
    ):
        bound = f" of at least {minimum}" if minimum is not None else ""
        raise InvalidRequest(f"`{name}` must be an integer{bound}", param=name)
    return value
