"""OpenAI request bodies: validate once, forward as bytes, decode in full only on demand.

Two decodes of the same bytes, both with decoders built once: a light typed one (the parse
stage) that rejects wrong field types with a 400 naming the field, and a shallow
``dict[str, Raw]`` view used to rewrite the top-level keys (``model``, ``stream_options``)
while every nested value is forwarded as the client's own bytes. ``decode_chat`` builds the
whole common model, for translating paths and for stages that read the messages.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import InvalidRequest
from ...model import ChatRequest, StreamOptions
from ...request import (
    ChatBody,
    CompletionBody,
    EmbeddingBody,
    Kind,
    ParsedRequest,
    check_client_credentials,
)
from ..common import check_model

_decoders: dict[Kind, msgspec.json.Decoder[Any]] = {
    Kind.CHAT: msgspec.json.Decoder(ChatBody),
    Kind.COMPLETION: msgspec.json.Decoder(CompletionBody),
    Kind.EMBEDDING: msgspec.json.Decoder(EmbeddingBody),
}
_chat_decoder = msgspec.json.Decoder(ChatRequest)
_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.encode
_encoder = msgspec.json.Encoder()
_INCLUDE_USAGE = msgspec.Raw(b'{"include_usage":true}')


def parse(kind: Kind, body: bytes) -> ParsedRequest:
    """The parse stage for OpenAI bodies: validate what routing and admission read."""
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        typed = _decoders[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}", param=_param(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    # Decoded with the light view itself (escaped keys too): free when absent.
    check_client_credentials(typed)
    check_model(typed.model)
    stream = kind is not Kind.EMBEDDING and bool(typed.stream)
    wants_usage = False
    max_tokens = None
    if isinstance(typed, ChatBody):
        options = typed.stream_options
        wants_usage = bool(options is not None and options.include_usage)
        max_tokens = (
            typed.max_completion_tokens
            if typed.max_completion_tokens is not None
            else typed.max_tokens
        )
        _check_positive("max_completion_tokens", typed.max_completion_tokens)
        if not typed.messages:
            raise InvalidRequest("`messages` must hold at least one message", param="messages")
    elif isinstance(typed, CompletionBody):
        options = typed.stream_options
        wants_usage = bool(options is not None and options.include_usage)
        max_tokens = typed.max_tokens
    if not isinstance(typed, EmbeddingBody):
        _check_positive("max_tokens", typed.max_tokens)
        _check_positive("n", typed.n)
    return ParsedRequest(
        kind=kind,
        model=typed.model,
        stream=stream,
        wants_usage_chunk=wants_usage,
        max_tokens=max_tokens,
        body=body,
        typed=typed,
        decode_chat=decode_chat if kind is Kind.CHAT else None,
        gateway_fields=_gateway_fields(typed),
    )


def _gateway_fields(typed: ChatBody | CompletionBody | EmbeddingBody) -> tuple[str, ...]:
    """Top-level fields only the gateway reads, present in this body."""
    present = []
    if typed.guardrails is not None:
        present.append("guardrails")
    if typed.cache is not None:
        present.append("cache")
    if typed.use_cache is not None:
        present.append("use-cache")
    if not isinstance(typed, EmbeddingBody):
        for name in (
            "fallbacks",
            "mock_response",
            "mock_testing_fallbacks",
            "mock_testing_rate_limit_error",
            "mock_timeout",
        ):
            if getattr(typed, name) is not None:
                present.append(name)
    return tuple(present)


def decode_chat(body: bytes) -> ChatRequest:
    """The whole chat body in the common model."""
    try:
        return _chat_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}", param=_param(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


def encode_chat(request: ChatRequest, model: str) -> bytes:
    """A common-model request as an OpenAI chat body for ``model``; streams ask for usage."""
    changes: dict[str, Any] = {"model": model}
    if request.stream and not request.wants_usage:
        changes["stream_options"] = StreamOptions(include_usage=True)
    body = msgspec.to_builtins(msgspec.structs.replace(request, **changes))
    # The model leaves defaults out; OpenAI wants every tool and tool call typed.
    for tool in body.get("tools") or ():
        tool.setdefault("type", "function")
    for message in body["messages"]:
        for call in message.get("tool_calls") or ():
            call.setdefault("type", "function")
    return _encoder.encode(body)


def forward_body(request: ParsedRequest, upstream_model: str) -> bytes:
    """The client's bytes with ``model`` replaced and usage requested on streams.

    When nothing needs to change the client's bytes are returned as they are.
    """
    ask_usage = request.stream and not request.wants_usage_chunk
    gateway_only = request.gateway_fields
    if upstream_model == request.model and not ask_usage and not gateway_only:
        return request.body
    fields = request.fields
    if fields is None:
        fields = request.fields = _raw_decoder.decode(request.body)
    fields = dict(fields)
    # What only the gateway reads (guardrails, cache controls) is not the upstream's business
    # (OpenAI refuses arguments it does not know).
    for name in gateway_only:
        fields.pop(name, None)
    fields["model"] = msgspec.Raw(_encode(upstream_model))
    if ask_usage:
        fields["stream_options"] = _merge_include_usage(fields.get("stream_options"))
    return _encode(fields)


def _merge_include_usage(raw: msgspec.Raw | None) -> msgspec.Raw:
    if raw is None or bytes(raw).strip() == b"null":
        return _INCLUDE_USAGE
    options = msgspec.json.decode(raw)
    if not isinstance(options, dict):
        return _INCLUDE_USAGE
    options["include_usage"] = True
    return msgspec.Raw(_encode(options))


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidRequest(f"`{name}` must be at least 1", param=name)


def _param(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    marker = " - at `$."
    if marker not in text:
        return None
    return text.split(marker, 1)[1].rstrip("`")
