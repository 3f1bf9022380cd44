"""A client's ``generateContent`` body (``POST /v1beta/models/<model>:generateContent`` or
``:streamGenerateContent?alt=sse``) as a ``ChatRequest``.

The model and whether to stream come from the URL, so the pipeline passes them in.
``contents`` become messages (``user`` → user, ``model`` → assistant); ``text`` parts stay
text, ``inlineData`` becomes a data URL (an image part for ``image/*``, an audio part for
``audio/*``, else a file part), ``fileData`` an image URL or a file reference;
``functionCall`` parts become the assistant's ``tool_calls`` (a fresh id when Gemini gives
none; a ``thoughtSignature`` rides inside the id as the outbound face expects) and
``functionResponse`` parts ``tool`` messages answering the first unanswered call of that
name in the turn before. ``systemInstruction`` → system messages; tools, ``toolConfig``
and ``generationConfig`` are read by ``inbound_config``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import InvalidRequest
from ...model import (
    AudioPart,
    ChatRequest,
    FilePart,
    FileRef,
    FunctionCall,
    ImagePart,
    ImageURL,
    InputAudio,
    Message,
    Part,
    TextPart,
    ToolCall,
    tool_call_id,
)
from ..inbound import json_body, non_empty_string, object_at, optional_object, stream_with_usage
from .inbound_config import apply_generation_config, apply_tool_config, field, tools_of
from .request import SIGNATURE_MARK

_MODEL_LIMIT = 256


def decode_request(body: bytes, model: str = "", stream: bool = False) -> ChatRequest:
    """Validate a ``generateContent`` body and decode it for ``model`` (from the URL, with
    or without its ``models/`` prefix); ``stream`` is true for ``streamGenerateContent``.
    Raises ``InvalidRequest`` naming the bad field (``contents[0].parts[1]`` …)."""
    payload = json_body(body)
    model = _model(model)
    contents = field(payload, "contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("`contents` must be a non-empty list of contents", param="contents")
    messages = _system(field(payload, "systemInstruction", "system_instruction"))
    messages.extend(_Turns().decode(contents))
    request = ChatRequest(model=model, messages=messages)
    tools = tools_of(field(payload, "tools"))
    request.tools = tools or None
    apply_tool_config(request, field(payload, "toolConfig", "tool_config"))
    apply_generation_config(request, field(payload, "generationConfig", "generation_config"))
    if stream:
        # The last chunk's usageMetadata comes from the usage report.
        stream_with_usage(request)
    return request


def _model(model: str) -> str:
    name = model.removeprefix("models/")
    if not name or len(name) > _MODEL_LIMIT:
        raise InvalidRequest(
            "the model in the URL must be a non-empty name of at most 256 characters",
            param="model",
        )
    return name


def _parts(content: dict[str, Any], where: str) -> list[dict[str, Any]]:
    parts = content.get("parts")
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise InvalidRequest(f"`{where}.parts` must be a list of parts", param=f"{where}.parts")
    return parts


def _system(instruction: Any) -> list[Message]:
    if instruction is None:
        return []
    if isinstance(instruction, str):
        return [Message(role="system", content=instruction)]
    where = "systemInstruction"
    parts = _parts(object_at(instruction, where), where)
    messages: list[Message] = []
    for j, part in enumerate(parts):
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(
                f"`{where}.parts[{j}]` must be a text part", param=f"{where}.parts[{j}]"
            )
        # One system message per part: the outbound face gives each back as its own part.
        messages.append(Message(role="system", content=text))
    return messages


class _Turns:
    """Decodes ``contents``, remembering the calls not yet answered so a
    ``functionResponse`` (matched by name in Gemini) gets its call's id."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[ToolCall] = []

    def decode(self, contents: list[Any]) -> list[Message]:
        messages: list[Message] = []
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            turn = object_at(content, where)
            role = turn.get("role") or "user"
            parts = _parts(turn, where)
            if role == "model":
                messages.append(self._model_turn(parts, where))
            elif role in ("user", "function"):
                messages.extend(self._user_turn(parts, where))
            else:
                raise InvalidRequest(
                    f"`{where}.role` must be 'user' or 'model', not {role!r}",
                    param=f"{where}.role",
                )
        return messages

    def _model_turn(self, parts: list[dict[str, Any]], where: str) -> Message:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for j, part in enumerate(parts):
            at = f"{where}.parts[{j}]"
            if "functionCall" in part or "function_call" in part:
                calls.append(_call(part, at))
            elif isinstance(part.get("text"), str):
                # Thoughts are the model's own; Gemini does not read them back.
                if not part.get("thought"):
                    texts.append(part["text"])
            else:
                raise InvalidRequest(
                    f"`{at}`: a model turn may hold only text and functionCall parts", param=at
                )
        self._pending = calls[:]
        return Message(
            role="assistant",
            content="".join(texts) if texts or not calls else None,
            tool_calls=calls or None,
        )

    def _user_turn(self, parts: list[dict[str, Any]], where: str) -> list[Message]:
        results: list[Message] = []
        content: list[Part] = []
        for j, part in enumerate(parts):
            at = f"{where}.parts[{j}]"
            response = field(part, "functionResponse", "function_response")
            if response is not None:
                results.append(self._result(object_at(response, f"{at}.functionResponse"), at))
            else:
                content.append(_user_part(part, at))
        # OpenAI wants the tool results right after the assistant's calls.
        if content:
            single_text = len(content) == 1 and isinstance(content[0], TextPart)
            text = content[0].text if single_text and isinstance(content[0], TextPart) else None
            results.append(Message(role="user", content=text if text is not None else content))
        return results

    def _result(self, response: dict[str, Any], where: str) -> Message:
        name = non_empty_string(response.get("name"), f"{where}.functionResponse.name")
        value = optional_object(response.get("response"), f"{where}.functionResponse.response")
        ident = response.get("id")
        call = self._answer(name, ident if isinstance(ident, str) else None)
        message = Message(role="tool", content=_result_text(value))
        if call is not None:
            message.tool_call_id = call.id
        else:
            # No call to answer: the name is all there is to match on upstream.
            message.tool_call_id = ident if isinstance(ident, str) and ident else tool_call_id()
            message.name = name
        return message

    def _answer(self, name: str, ident: str | None) -> ToolCall | None:
        # Gemini answers parallel calls in their order: the first unanswered one matches.
        for k, call in enumerate(self._pending):
            if ident and call.id.partition(SIGNATURE_MARK)[0] == ident:
                return self._pending.pop(k)
        for k, call in enumerate(self._pending):
            if call.function.name == name:
                return self._pending.pop(k)
        return None


def _call(part: dict[str, Any], where: str) -> ToolCall:
    call = object_at(field(part, "functionCall", "function_call"), f"{where}.functionCall")
    name = non_empty_string(call.get("name"), f"{where}.functionCall.name")
    args = optional_object(call.get("args"), f"{where}.functionCall.args")
    ident = call.get("id")
    ident = ident if isinstance(ident, str) and ident else tool_call_id()
    signature = field(part, "thoughtSignature", "thought_signature")
    if isinstance(signature, str) and signature:
        # The outbound face gives the signature back to Gemini from inside the id.
        ident += SIGNATURE_MARK + signature
    function = FunctionCall(name=name, arguments=orjson.dumps(args).decode())
    return ToolCall(id=ident, function=function)


def _result_text(response: dict[str, Any]) -> str:
    """A ``functionResponse.response`` as the tool message's text: the outbound face wraps
    text as ``{"content": text}``, so that comes back as the text, anything else as JSON."""
    content = response.get("content")
    if len(response) == 1 and isinstance(content, str):
        return content
    return orjson.dumps(response).decode()


def _user_part(part: dict[str, Any], where: str) -> Part:
    text = part.get("text")
    if isinstance(text, str):
        return TextPart(text=text)
    inline = field(part, "inlineData", "inline_data")
    if inline is not None:
        inline = object_at(inline, f"{where}.inlineData")
        mime = _string(inline, "mimeType", f"{where}.inlineData")
        data = _string(inline, "data", f"{where}.inlineData")
        if mime.startswith("image/"):
            return ImagePart(image_url=ImageURL(url=f"data:{mime};base64,{data}"))
        if mime.startswith("audio/"):
            return AudioPart(input_audio=InputAudio(data=data, format=mime.split("/", 1)[1]))
        return FilePart(file=FileRef(file_data=f"data:{mime};base64,{data}", format=mime))
    file_data = field(part, "fileData", "file_data")
    if file_data is not None:
        file_data = object_at(file_data, f"{where}.fileData")
        uri = _string(file_data, "fileUri", f"{where}.fileData")
        mime = field(file_data, "mimeType")
        if isinstance(mime, str) and mime.startswith("image/"):
            return ImagePart(image_url=ImageURL(url=uri))
        return FilePart(file=FileRef(file_id=uri, format=mime if isinstance(mime, str) else None))
    if "functionCall" in part or "function_call" in part:
        raise InvalidRequest(f"`{where}`: only a model turn may hold a functionCall", param=where)
    raise InvalidRequest(
        f"`{where}` must hold text, inlineData, fileData or functionResponse", param=where
    )


def _string(obj: dict[str, Any], name: str, where: str) -> str:
    return non_empty_string(field(obj, name), f"{where}.{name}")
