"""``cohere/``: Cohere's v2 Chat API (``POST /v2/chat``) and v2 Embed (``POST /v2/embed``).

Cohere v2 is close to OpenAI's shape: messages keep their roles (``system``, ``user``,
``assistant`` with ``tool_calls`` and a ``tool_plan``, ``tool`` with ``tool_call_id``), tool
arguments are JSON strings. The differences translated here: sampling names (``p``, ``k``,
``stop_sequences``), ``tool_choice`` (only ``REQUIRED``/``NONE``), the reply's content list,
``finish_reason`` names, usage under ``billed_units``/``tokens``, and the typed stream events
(``message-start``, ``content-delta``, ``tool-plan-delta``, ``tool-call-start``/``-delta``/
``-end``, ``message-end``).

Usage is what Cohere bills: ``billed_units`` when present (it leaves out the prompt template
Cohere adds), else ``tokens``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError, UpstreamError
from ..formats.translate import SSEEvent, chat_completion, text_of, tool_call_json, usage
from ..parse import Kind, ParsedRequest
from ..upstream.transport import Transport
from ..usage import Usage
from ._openai_format import (
    ChatMessage,
    ChatRequest,
    ChunkStream,
    arguments_text,
    completion_id,
    decode_chat,
    embedding_list,
    finish_reason,
    image_url_of,
    json_headers,
    loads_object,
    provider_error,
    read_all,
    refuse_legacy_completions,
    text_inputs,
    tool_call_id,
    unsupported,
)
from .base import Deployment, Reply

DEFAULT_BASE = "https://api.cohere.com"

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
}


# -- Cohere's reply, only the fields read -------------------------------------------------
class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str | None = None
    function: _Function | None = None


class _ContentBlock(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    thinking: str | None = None


class _Message(msgspec.Struct):
    content: list[_ContentBlock] | None = None
    tool_plan: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Tokens(msgspec.Struct):
    input_tokens: float | None = None
    output_tokens: float | None = None


class _Usage(msgspec.Struct):
    billed_units: _Tokens | None = None
    tokens: _Tokens | None = None
    cached_tokens: float | None = None


class _Response(msgspec.Struct):
    id: str | None = None
    finish_reason: str | None = None
    message: _Message | None = None
    usage: _Usage | None = None


class _DeltaContent(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None


class _DeltaMessage(msgspec.Struct):
    # message-start opens the message with empty lists; the deltas carry single objects.
    content: _DeltaContent | list[Any] | None = None
    tool_plan: str | None = None
    tool_calls: _ToolCall | list[Any] | None = None


class _Delta(msgspec.Struct):
    message: _DeltaMessage | None = None
    finish_reason: str | None = None
    usage: _Usage | None = None
    error: str | None = None


class _Event(msgspec.Struct):
    type: str = ""
    id: str | None = None
    index: int = 0
    delta: _Delta | None = None


_response_decoder = msgspec.json.Decoder(_Response)
_event_decoder = msgspec.json.Decoder(_Event)


class CohereProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        refuse_legacy_completions(request, "cohere/")
        if request.kind is Kind.EMBEDDING:
            return await self._embed(request, deployment, upstream_model)
        body = build_request(decode_chat(request), upstream_model, request.stream)
        resp = await self._transport.post(
            endpoint(deployment, "chat"),
            orjson.dumps(body),
            headers(deployment, request.stream),
            deployment.deadlines,
        )
        if resp.status >= 400:
            raise cohere_error(
                resp.status, await resp.read(), resp.header("retry-after"), deployment
            )
        if request.stream:
            return CohereStream(upstream_model, deployment, request.wants_usage_chunk).reply(resp)
        raw = await read_all(resp, deployment.deadlines)
        return translate_response(raw, upstream_model)

    async def _embed(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        texts = text_inputs(request, "cohere/")
        body = {
            "model": upstream_model,
            "texts": texts,
            "input_type": "search_document",
            "embedding_types": ["float"],
        }
        resp = await self._transport.post(
            endpoint(deployment, "embed"),
            orjson.dumps(body),
            headers(deployment, False),
            deployment.deadlines,
        )
        if resp.status >= 400:
            raise cohere_error(
                resp.status, await resp.read(), resp.header("retry-after"), deployment
            )
        decoded = loads_object(await read_all(resp, deployment.deadlines)) or {}
        embeddings = decoded.get("embeddings") or {}
        vectors = embeddings.get("float", []) if isinstance(embeddings, dict) else embeddings
        billed = ((decoded.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        tokens = int(billed) if isinstance(billed, int | float) else None
        reported = None
        if tokens is not None:
            reported = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
        return Reply(body=embedding_list(vectors, upstream_model, tokens), usage=reported)


def endpoint(deployment: Deployment, method: str) -> str:
    """``{base}/v2/{method}``; a base that already ends in ``/v2`` (or the method) is kept."""
    base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
    if base.endswith(f"/v2/{method}"):
        return base
    if base.endswith("/v2"):
        return f"{base}/{method}"
    return f"{base}/v2/{method}"


def headers(deployment: Deployment, stream: bool) -> dict[str, str]:
    return json_headers(deployment, stream, "authorization", "Bearer ")


# -- request -------------------------------------------------------------------------------
def build_request(chat: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
    if chat.n is not None and chat.n > 1:
        raise InvalidRequest("cohere/ models return one choice: `n` must be 1", param="n")
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m, f"messages[{i}]") for i, m in enumerate(chat.messages)],
        "stream": stream,
    }
    tools = chat.tool_list()
    forced = chat.forced_tool()
    if forced is not None:
        # Cohere cannot name the tool to call: offer only that one, and require a call.
        tools = [t for t in tools if t.function.name == forced]
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.function.name,
                    "description": t.function.description or "",
                    "parameters": t.function.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
        if any(t.function.strict for t in tools):
            body["strict_tools"] = True
    choice = chat.choice()
    if forced is not None or choice in ("required", "any"):
        body["tool_choice"] = "REQUIRED"
    elif choice == "none":
        body["tool_choice"] = "NONE"
    for key, value in (
        ("temperature", chat.temperature),
        ("p", chat.top_p),
        ("k", chat.top_k),
        ("max_tokens", chat.output_limit()),
        ("seed", chat.seed),
        ("presence_penalty", chat.presence_penalty),
        ("frequency_penalty", chat.frequency_penalty),
    ):
        if value is not None:
            body[key] = value
    stops = chat.stop_list()
    if stops:
        body["stop_sequences"] = stops
    fmt = chat.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        response_format: dict[str, Any] = {"type": "json_object"}
        schema = (fmt.json_schema or {}).get("schema")
        if fmt.type == "json_schema" and isinstance(schema, dict):
            response_format["json_schema"] = schema
        body["response_format"] = response_format
    return body


def _message(message: ChatMessage, where: str) -> dict[str, Any]:
    role = message.role
    if role in ("system", "developer"):
        return {"role": "system", "content": text_of(message.content)}
    if role == "user":
        return {"role": "user", "content": _user_content(message.content, where)}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = text_of(message.content)
        if message.tool_calls:
            # Cohere's assistant turn that calls tools carries its text as the tool plan.
            if text:
                out["tool_plan"] = text
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": arguments_text(call)},
                }
                for call in message.tool_calls
            ]
        else:
            out["content"] = text
        return out
    if role in ("tool", "function"):
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or message.name or "",
            "content": text_of(message.content),
        }
    raise unsupported(f"{where}.role", role, "cohere/")


def _user_content(
    content: str | list[dict[str, Any]] | None, where: str
) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image: dict[str, Any] = {"url": image_url_of(part)}
            detail = part.get("image_url")
            if isinstance(detail, dict) and detail.get("detail"):
                image["detail"] = detail["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise unsupported(f"{where}.content[{j}].type", kind, "cohere/")
    return parts


# -- response ------------------------------------------------------------------------------
def _usage(reported: _Usage | None) -> Usage | None:
    if reported is None:
        return None
    counts = reported.billed_units or reported.tokens
    if counts is None or (counts.input_tokens is None and counts.output_tokens is None):
        counts = reported.tokens
    if counts is None:
        return None
    return usage(
        int(counts.input_tokens or 0),
        int(counts.output_tokens or 0),
        cached=int(reported.cached_tokens or 0),
    )


def translate_response(raw: bytes, model: str) -> Reply:
    try:
        decoded = _response_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamError("the upstream sent a reply that is not Cohere's JSON") from exc
    message = decoded.message or _Message()
    blocks = message.content or []
    text = "".join(b.text for b in blocks if b.type == "text" and b.text)
    reasoning = "".join(b.thinking for b in blocks if b.type == "thinking" and b.thinking)
    calls = []
    for call in message.tool_calls or ():
        function = call.function or _Function()
        calls.append(
            tool_call_json(call.id or tool_call_id(), function.name, function.arguments or "{}")
        )
    if not text and calls and message.tool_plan:
        text = message.tool_plan
    found = _usage(decoded.usage)
    body = chat_completion(
        ident=completion_id(decoded.id),
        model=model,
        content=text if text or not calls else None,
        tool_calls=calls,
        finish_reason=finish_reason(_FINISH, decoded.finish_reason, bool(calls)),
        usage=found,
        reasoning=reasoning or None,
    )
    return Reply(body=body, usage=found)


class CohereStream(ChunkStream):
    """Cohere's typed SSE events in, OpenAI ``chat.completion.chunk`` events out."""

    last_event = "message-end event"

    def __init__(self, model: str, deployment: Deployment, include_usage: bool) -> None:
        super().__init__(model, deployment, include_usage)
        # Cohere's tool-call index → the OpenAI position, in the order calls started.
        self._positions: dict[int, int] = {}

    def on(self, event: SSEEvent) -> bytes:
        data = event.data.strip()
        if not data or data == b"[DONE]" or self.finished:
            return b""
        try:
            decoded = _event_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("the upstream sent an event that is not Cohere's JSON") from exc
        first = not self.started
        writer = self.writer_for(decoded.id)
        out = [writer.role()] if first else []
        delta = decoded.delta or _Delta()
        message = delta.message or _DeltaMessage()
        kind = decoded.type or event.event
        if kind == "content-delta" and isinstance(message.content, _DeltaContent):
            if message.content.thinking:
                out.append(writer.reasoning(message.content.thinking))
            elif message.content.text:
                out.append(writer.text(message.content.text))
        elif kind == "tool-plan-delta" and message.tool_plan:
            out.append(writer.text(message.tool_plan))
        elif kind == "tool-call-start" and isinstance(message.tool_calls, _ToolCall):
            call = message.tool_calls
            function = call.function or _Function()
            position = self._positions.setdefault(decoded.index, len(self._positions))
            out.append(
                writer.tool_call_start(
                    position, call.id or tool_call_id(), function.name, function.arguments
                )
            )
        elif kind == "tool-call-delta" and isinstance(message.tool_calls, _ToolCall):
            arguments = message.tool_calls.function
            if arguments is not None and arguments.arguments:
                position = self._positions.setdefault(decoded.index, len(self._positions))
                out.append(writer.tool_call_arguments(position, arguments.arguments))
        elif kind == "message-end":
            if delta.error:
                raise provider_error(500, delta.error, self.deployment)
            found = _usage(delta.usage)
            if found is not None:
                self.usage = found
            self.finished = True
            reason = finish_reason(_FINISH, delta.finish_reason, bool(self._positions))
            out.append(writer.finish(reason))
        return b"".join(out)


# -- errors --------------------------------------------------------------------------------
def cohere_error(
    status: int, raw: bytes, retry_after: str | None, deployment: Deployment
) -> TollwayError:
    """Cohere's ``{"id", "message"}`` error reply as the contract's."""
    decoded = loads_object(raw) or {}
    message = decoded.get("message")
    if not isinstance(message, str):
        message = raw.decode("utf-8", "replace")[:500] or f"the upstream returned HTTP {status}"
    # Cohere answers an invalid token with 498 and a cancelled request with 499.
    if status == 498:
        status = 401
    elif status == 499:
        status = 502
    return provider_error(status, message, deployment, retry_after=retry_after)
