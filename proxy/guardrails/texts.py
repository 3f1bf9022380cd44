"""The texts a guardrail sees, read out of a request or a reply and written back.

A request's texts are its messages' text (string contents and text parts, every role, in
order), an embeddings request's string inputs, or a completion's prompt; a reply's are each
choice's message text. Writing back keeps everything else (images, tool calls) as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..model import ChatReply, ChatRequest, Message, TextPart
from ..request import CompletionBody, EmbeddingBody, Kind, ParsedRequest

_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


def request_texts(request: ParsedRequest) -> list[str]:
    if request.kind is Kind.CHAT:
        return chat_texts(request.chat())
    typed = request.typed
    if isinstance(typed, EmbeddingBody):
        return [t for t in _listed(typed.input) if isinstance(t, str)]
    if isinstance(typed, CompletionBody):
        return [t for t in _listed(typed.prompt) if isinstance(t, str)]
    return []


def chat_texts(chat: ChatRequest) -> list[str]:
    texts: list[str] = []
    for message in chat.messages:
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(part.text for part in content if isinstance(part, TextPart))
    return texts


def replace_request_texts(request: ParsedRequest, texts: Sequence[str]) -> None:
    """Write ``texts`` (as ``request_texts`` read them) back into ``request``.

    The request is marked rewritten, so even a pass-through upstream receives the changed
    text (encoded from the common model for that one request)."""
    if request.kind is Kind.CHAT:
        request.rewrite(chat=_replaced_chat(request.chat(), list(texts)))
        return
    typed = request.typed
    if isinstance(typed, EmbeddingBody):
        request.rewrite(typed=msgspec.structs.replace(typed, input=_refill(typed.input, texts)))
    elif isinstance(typed, CompletionBody):
        prompt = _refill(typed.prompt, texts)
        fields = dict(_raw_fields.decode(request.body))
        fields["prompt"] = msgspec.Raw(msgspec.json.encode(prompt))
        # Completions only go to OpenAI-compatible upstreams: the body stays OpenAI's bytes.
        request.rewrite(typed=msgspec.structs.replace(typed, prompt=prompt))
        request.body = msgspec.json.encode(fields)
        request.rewritten = False


def _replaced_chat(chat: ChatRequest, texts: list[str]) -> ChatRequest:
    queue = iter(texts)
    messages: list[Message] = []
    for message in chat.messages:
        content = message.content
        if isinstance(content, str):
            message = msgspec.structs.replace(message, content=next(queue))
        elif content:
            parts = [
                msgspec.structs.replace(part, text=next(queue))
                if isinstance(part, TextPart)
                else part
                for part in content
            ]
            message = msgspec.structs.replace(message, content=parts)
        messages.append(message)
    return msgspec.structs.replace(chat, messages=messages)


def reply_texts(reply: ChatReply) -> list[str]:
    return [choice.message.text() for choice in reply.choices]


def replace_reply_texts(reply: ChatReply, texts: Sequence[str]) -> ChatReply:
    choices = [
        msgspec.structs.replace(
            choice,
            message=msgspec.structs.replace(
                choice.message, content=text if choice.message.content is not None else None
            ),
        )
        for choice, text in zip(reply.choices, texts, strict=True)
    ]
    return msgspec.structs.replace(reply, choices=choices)


def _listed(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _refill(original: str | list[Any], texts: Sequence[str]) -> Any:
    if isinstance(original, str):
        return texts[0]
    queue = iter(texts)
    return [next(queue) if isinstance(item, str) else item for item in original]
