"""OpenAI reply bodies: ``chat.completion`` and embedding ``list`` bodies, both ways."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import orjson

from ...errors import UpstreamUnreachable
from ...model import ChatReply, EmbeddingReply, Usage

_Reply = TypeVar("_Reply", ChatReply, EmbeddingReply)
_reply_decoder = msgspec.json.Decoder(ChatReply)
_embedding_decoder = msgspec.json.Decoder(EmbeddingReply)


def decode_reply(body: bytes) -> ChatReply:
    return _decode(_reply_decoder, body, "a chat completion")


def decode_embeddings(body: bytes) -> EmbeddingReply:
    return _decode(_embedding_decoder, body, "an embedding list")


def _decode(decoder: msgspec.json.Decoder[_Reply], body: bytes, what: str) -> _Reply:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamUnreachable(f"the upstream sent a reply that is not {what}: {exc}") from exc


def usage_json(value: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": value.prompt_tokens,
        "completion_tokens": value.completion_tokens,
        "total_tokens": value.total_tokens,
        "prompt_tokens_details": {"cached_tokens": value.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": value.reasoning_tokens},
    }


def tool_call_json(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def encode_reply(reply: ChatReply) -> bytes:
    """A ``chat.completion`` body as OpenAI writes it."""
    choices = []
    for choice in reply.choices:
        message = choice.message
        out: dict[str, Any] = {"role": "assistant", "content": _content(message), "refusal": None}
        if message.tool_calls:
            out["tool_calls"] = [
                tool_call_json(call.id, call.function.name, call.arguments_text())
                for call in message.tool_calls
            ]
        if message.reasoning_content:
            out["reasoning_content"] = message.reasoning_content
        choices.append(
            {
                "index": choice.index,
                "message": out,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    body: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": choices,
    }
    if reply.usage is not None:
        body["usage"] = usage_json(reply.usage)
    return orjson.dumps(body)


def _content(message: Any) -> str | None:
    if message.content is None:
        return None
    return str(message.text())


def encode_embeddings(reply: EmbeddingReply, tokens: int | None = None) -> bytes:
    """An embeddings ``list`` body; ``usage`` from the reply, else ``tokens`` when known."""
    payload: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": item.index, "embedding": item.embedding}
            for item in reply.data
        ],
        "model": reply.model,
    }
    if reply.usage is not None:
        tokens = reply.usage.prompt_tokens
    if tokens is not None:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(payload)
