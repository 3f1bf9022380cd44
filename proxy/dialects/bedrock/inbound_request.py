"""A client's Converse request (``POST /model/{modelId}/converse`` or ``/converse-stream``)
as a ``ChatRequest``; the model id and whether to stream come from the URL.

``system`` text blocks → system messages (one each, as the outbound mapping writes them);
user ``text`` / ``image`` (base64 ``bytes`` → a data URL) / ``document`` (bytes → a file part,
text sources → text) blocks → content parts, a ``cachePoint`` → ``cache_control`` on the part
before it; ``toolResult`` blocks → ``tool`` messages placed before the user's own parts
(OpenAI wants tool results right after the assistant's calls); assistant ``toolUse`` →
``tool_calls``, ``reasoningContent`` → ``reasoning_content``; ``inferenceConfig`` →
``max_tokens`` / ``temperature`` / ``top_p`` / ``stop``; ``toolConfig`` → ``tools`` and
``tool_choice``; ``additionalModelRequestFields.top_k`` → ``top_k`` and
``requestMetadata.user`` → ``user`` (the outbound mapping's inverses). A stream always asks
for usage: it becomes the ``metadata`` event, and the ledger's.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import InvalidRequest
from ...model import (
    ChatRequest,
    FilePart,
    FileRef,
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
from ..inbound import (
    json_body,
    optional_number,
    optional_object,
    positive_integer,
    stream_with_usage,
    string_list,
)

_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_DOCUMENT_MIME = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "txt": "text/plain",
    "md": "text/markdown",
}
# Fields that configure Bedrock itself; the gateway cannot honour them, and silently
# dropping a guardrail would let through what the client meant to block.
_REFUSED = ("guardrailConfig", "promptVariables")
_EPHEMERAL = {"type": "ephemeral"}


def decode_request(body: bytes, model: str, stream: bool = False) -> ChatRequest:
    """Validate a Converse body and decode it; raises ``InvalidRequest`` naming the field."""
    payload = json_body(body)
    check_model(model, param="modelId")
    for name in _REFUSED:
        if payload.get(name) is not None:
            raise InvalidRequest(f"`{name}` is not supported by the gateway", param=name)
    messages = _system(payload.get("system"))
    raw_messages = payload.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("`messages` must be a non-empty list of messages", param="messages")
    for i, message in enumerate(raw_messages):
        messages.extend(_message(message, f"messages[{i}]"))
    request = ChatRequest(model=model, messages=messages)
    _inference(request, _object(payload, "inferenceConfig"))
    _tool_config(request, _object(payload, "toolConfig"))
    top_k = _object(payload, "additionalModelRequestFields").get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        request.top_k = top_k
    user = _object(payload, "requestMetadata").get("user")
    if isinstance(user, str) and user:
        request.user = user
    if stream:
        # The usage report becomes the metadata event.
        stream_with_usage(request)
    return request


def _object(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return optional_object(payload.get(name), name)


def _system(system: Any) -> list[Message]:
    if system is None:
        return []
    if not isinstance(system, list):
        raise InvalidRequest("`system` must be a list of content blocks", param="system")
    out: list[Message] = []
    for k, block in enumerate(system):
        if not isinstance(block, dict):
            raise InvalidRequest(f"system[{k}] must be an object", param=f"system[{k}]")
        if "text" in block:
            out.append(Message(role="system", content=_string(block["text"], f"system[{k}].text")))
        elif not {"cachePoint", "guardContent"} & block.keys():
            raise InvalidRequest(
                f"system[{k}]: system blocks of type {_kind(block)!r} are not supported",
                param=f"system[{k}]",
            )
    return out


def _message(message: Any, where: str) -> list[Message]:
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    content = message.get("content")
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise InvalidRequest(
            f"{where}.content must be a list of content blocks", param=f"{where}.content"
        )
    role = message.get("role")
    if role == "assistant":
        return [_assistant(content, where)]
    if role == "user":
        return _user(content, where)
    raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")


def _assistant(content: list[dict[str, Any]], where: str) -> Message:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if "text" in block:
            texts.append(_string(block["text"], f"{at}.text"))
        elif "toolUse" in block:
            calls.append(_tool_use(block["toolUse"], f"{at}.toolUse"))
        elif "reasoningContent" in block:
            thought = block["reasoningContent"]
            text = thought.get("reasoningText") if isinstance(thought, dict) else None
            if isinstance(text, dict) and isinstance(text.get("text"), str):
                reasoning.append(text["text"])
        elif "cachePoint" not in block:
            raise _unsupported(block, at)
    return Message(
        role="assistant",
        content="".join(texts) if texts else None,
        tool_calls=calls or None,
        reasoning_content="".join(reasoning) or None,
    )


def _tool_use(tool_use: Any, where: str) -> ToolCall:
    if not isinstance(tool_use, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    ident = _string(tool_use.get("toolUseId"), f"{where}.toolUseId")
    name = _string(tool_use.get("name"), f"{where}.name")
    arguments = orjson.dumps(tool_use.get("input") or {}).decode()
    return ToolCall(id=ident, function=FunctionCall(name=name, arguments=arguments))


def _user(content: list[dict[str, Any]], where: str) -> list[Message]:
    out: list[Message] = []
    parts: list[Part] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if "text" in block:
            parts.append(TextPart(text=_string(block["text"], f"{at}.text")))
        elif "image" in block:
            parts.append(_image(block["image"], f"{at}.image"))
        elif "document" in block:
            parts.append(_document(block["document"], f"{at}.document"))
        elif "toolResult" in block:
            # OpenAI wants the tool results right after the assistant's calls.
            out.append(_tool_result(block["toolResult"], f"{at}.toolResult"))
        elif "cachePoint" in block:
            # A cache point marks the end of the cached prefix: the part before it.
            last = parts[-1] if parts else None
            if isinstance(last, TextPart | ImagePart | FilePart):
                last.cache_control = dict(_EPHEMERAL)
        else:
            raise _unsupported(block, at)
    if parts:
        plain = all(isinstance(p, TextPart) and p.cache_control is None for p in parts)
        # Text alone is sent as a plain string, as most OpenAI-format servers expect.
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        out.append(Message(role="user", content=text if plain else parts))
    return out


def _image(image: Any, where: str) -> ImagePart:
    if not isinstance(image, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    image_format = image.get("format")
    if image_format not in _IMAGE_FORMATS:
        raise InvalidRequest(
            f"{where}.format must be one of png, jpeg, gif, webp", param=f"{where}.format"
        )
    data = _bytes(image.get("source"), f"{where}.source")
    return ImagePart(image_url=ImageURL(url=f"data:image/{image_format};base64,{data}"))


def _document(document: Any, where: str) -> Part:
    if not isinstance(document, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    source = document.get("source")
    if isinstance(source, dict) and isinstance(source.get("text"), str):
        return TextPart(text=source["text"])
    if isinstance(source, dict) and isinstance(source.get("content"), list):
        return TextPart(text=_texts(source["content"]))
    mime = _DOCUMENT_MIME.get(str(document.get("format")))
    if mime is None:
        raise InvalidRequest(
            f"{where}.format must be one of {', '.join(_DOCUMENT_MIME)}", param=f"{where}.format"
        )
    data = _bytes(source, f"{where}.source")
    name = document.get("name")
    file = FileRef(
        file_data=f"data:{mime};base64,{data}",
        filename=name if isinstance(name, str) and name else None,
        format=mime,
    )
    return FilePart(file=file)


def _bytes(source: Any, where: str) -> str:
    """A source's base64 ``bytes`` (Converse's JSON carries blobs as base64 text)."""
    data = source.get("bytes") if isinstance(source, dict) else None
    if not isinstance(data, str) or not data:
        raise InvalidRequest(
            f"{where} must hold base64 `bytes` (S3 locations are not supported)",
            param=f"{where}.bytes",
        )
    return data


def _tool_result(result: Any, where: str) -> Message:
    if not isinstance(result, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    ident = _string(result.get("toolUseId"), f"{where}.toolUseId")
    content = result.get("content")
    if content is not None and not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a list", param=f"{where}.content")
    # A chat tool message is text: JSON results are written out, images and documents (which
    # no chat tool message can carry) are left out, and ``status`` has no place.
    return Message(role="tool", tool_call_id=ident, content=_texts(content or []))


def _texts(blocks: list[Any]) -> str:
    texts: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif "json" in block:
            texts.append(orjson.dumps(block["json"]).decode())
    return "\n".join(texts)


def _inference(request: ChatRequest, config: dict[str, Any]) -> None:
    max_tokens = positive_integer(config.get("maxTokens"), "inferenceConfig.maxTokens")
    if max_tokens is not None:
        request.max_tokens = max_tokens
    request.temperature = _number(config, "temperature")
    request.top_p = _number(config, "topP")
    stop = config.get("stopSequences")
    if stop:
        request.stop = string_list(stop, "inferenceConfig.stopSequences")


def _number(config: dict[str, Any], name: str) -> float | None:
    return optional_number(config.get(name), f"inferenceConfig.{name}")


def _tool_config(request: ChatRequest, config: dict[str, Any]) -> None:
    tools = config.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("`toolConfig.tools` must be a list", param="toolConfig.tools")
    specs: list[Tool] = []
    for k, tool in enumerate(tools or ()):
        where = f"toolConfig.tools[{k}]"
        if isinstance(tool, dict) and "cachePoint" in tool:
            continue
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict):
            raise InvalidRequest(f"{where}.toolSpec is required", param=f"{where}.toolSpec")
        name = _string(spec.get("name"), f"{where}.toolSpec.name")
        schema = spec.get("inputSchema")
        parameters = schema.get("json") if isinstance(schema, dict) else None
        description = spec.get("description")
        specs.append(
            Tool(
                function=FunctionSpec(
                    name=name,
                    description=description if isinstance(description, str) else None,
                    parameters=parameters
                    if isinstance(parameters, dict)
                    else {"type": "object", "properties": {}},
                )
            )
        )
    request.tools = specs or None
    choice = config.get("toolChoice")
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise InvalidRequest("`toolConfig.toolChoice` must be an object", param="toolConfig")
    if "auto" in choice:
        request.tool_choice = "auto"
    elif "any" in choice:
        request.tool_choice = "required"
    elif "tool" in choice:
        forced = choice["tool"]
        where = "toolConfig.toolChoice.tool.name"
        name = _string(forced.get("name") if isinstance(forced, dict) else None, where)
        request.tool_choice = {"type": "function", "function": {"name": name}}
    else:
        raise InvalidRequest(
            "`toolConfig.toolChoice` must be one of auto, any, tool",
            param="toolConfig.toolChoice",
        )


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"`{where}` must be a string", param=where)
    return value


def _kind(block: dict[str, Any]) -> str:
    return next(iter(block), "")


def _unsupported(block: dict[str, Any], where: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}: content blocks of type {_kind(block)!r} are not supported", param=where
    )
