"""``gemini/``: Google AI Studio's ``generateContent`` and ``streamGenerateContent?alt=sse``.

OpenAI chat requests become Gemini ``contents`` (roles ``user``/``model``; tool results are
``functionResponse`` parts in a user turn), ``systemInstruction``, ``tools``
(``functionDeclarations``), ``toolConfig`` and ``generationConfig``; replies come back as
``chat.completion`` bodies or chunks. The key travels only in ``x-goog-api-key``, never in
the URL, where proxies and access logs would keep it.

Gemini streams a function call whole, in one event, and may attach a ``thoughtSignature``
that must come back with the call on the next turn. The signature rides inside the tool
call id the client sees (``<id>__thought__<signature>``) and is restored from it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError, UpstreamError, UpstreamUnreachable
from ..formats.translate import (
    ChunkWriter,
    SSEEvent,
    chat_completion,
    parse_data_url,
    text_of,
    tool_call_json,
    translate_events,
    usage,
)
from ..parse import EmbeddingBody, Kind, ParsedRequest
from ..upstream import Transport
from ..usage import Usage
from ._openai_format import (
    ChatMessage,
    ChatRequest,
    arguments_object,
    decode_chat,
    image_url_of,
    loads_object,
    mime_of_url,
    provider_error,
    read_all,
    tool_call_id,
)
from .base import EVENT_STREAM, Deployment, Reply

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"
SIGNATURE_MARK = "__thought__"

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


# -- Gemini's reply, only the fields read -------------------------------------------------
class _FunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    function_call: _FunctionCall | None = None
    thought_signature: str | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int = 0


class _UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = []
    usage_metadata: _UsageMetadata | None = None
    prompt_feedback: _PromptFeedback | None = None
    response_id: str | None = None
    # A stream reports a failure after its first event as an event holding an error.
    error: dict[str, Any] | None = None


_response_decoder = msgspec.json.Decoder(_Response)


class GeminiProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        if request.kind is Kind.EMBEDDING:
            return await self._embed(request, deployment, upstream_model)
        if request.kind is not Kind.CHAT:
            raise InvalidRequest(
                "gemini/ models serve /v1/chat/completions and /v1/embeddings, "
                "not legacy /v1/completions"
            )
        chat = decode_chat(request)
        if chat.n is not None and chat.n > 1:
            raise InvalidRequest("gemini/ models return one choice here: `n` must be 1", param="n")
        body = orjson.dumps(build_request(chat))
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        resp = await self._transport.post(
            model_url(deployment, upstream_model, method),
            body,
            headers(deployment, request.stream),
            deployment.deadlines,
        )
        if resp.status >= 400:
            raise gemini_error(resp.status, await resp.read(), deployment)
        if request.stream:
            stream = GeminiStream(upstream_model, deployment, request.wants_usage_chunk)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=stream.run(resp.iter_chunks()),
                usage_of_stream=lambda: stream.usage,
                close=resp.close,
            )
        raw = await read_all(resp, deployment.deadlines)
        return translate_response(raw, upstream_model, deployment)

    async def _embed(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        typed = request.typed
        assert isinstance(typed, EmbeddingBody)
        inputs = [typed.input] if isinstance(typed.input, str) else list(typed.input)
        if not all(isinstance(item, str) for item in inputs):
            raise InvalidRequest("gemini/ embeddings take text inputs", param="input")
        model = _model_path(upstream_model)
        body = orjson.dumps(
            {
                "requests": [
                    {"model": model, "content": {"parts": [{"text": text}]}} for text in inputs
                ]
            }
        )
        resp = await self._transport.post(
            model_url(deployment, upstream_model, "batchEmbedContents"),
            body,
            headers(deployment, False),
            deployment.deadlines,
        )
        if resp.status >= 400:
            raise gemini_error(resp.status, await resp.read(), deployment)
        raw = await read_all(resp, deployment.deadlines)
        decoded = loads_object(raw) or {}
        vectors = [e.get("values", []) for e in decoded.get("embeddings", [])]
        # Gemini reports no token count for embeddings: the client sees an estimate (about
        # four bytes a token) and the ledger bills the call as estimated (no Reply.usage).
        tokens = sum(max(1, (len(text.encode()) + 3) // 4) for text in inputs)
        payload = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Reply(body=orjson.dumps(payload))


def base_url(deployment: Deployment) -> str:
    base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
    if re.search(r"/v1(beta\d*|alpha\d*)?$", base) is None:
        base += "/v1beta"
    return base


def _model_path(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def model_url(deployment: Deployment, model: str, method: str) -> str:
    return f"{base_url(deployment)}/{_model_path(model)}:{method}"


def headers(deployment: Deployment, stream: bool) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "accept-encoding": "identity",
    }
    if deployment.api_key:
        out["x-goog-api-key"] = deployment.api_key
    if deployment.params.extra_headers:
        out.update(deployment.params.extra_headers)
    return out


# -- request -------------------------------------------------------------------------------
def build_request(chat: ChatRequest) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.role
        if role in ("system", "developer"):
            text = text_of(message.content)
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            _append(contents, "user", _user_parts(message, where))
        elif role == "assistant":
            _append(contents, "model", _assistant_parts(message, where, names_by_id))
        elif role in ("tool", "function"):
            _append(contents, "user", [_tool_result(message, names_by_id)])
        else:
            raise InvalidRequest(
                f"{where}.role {role!r} is not supported for gemini/ models", param=f"{where}.role"
            )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = chat.tool_list()
    if tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function) for t in tools]}]
    tool_config = _tool_config(chat)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(chat)
    if config:
        body["generationConfig"] = config
    return body


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    # Gemini wants turns to alternate; consecutive messages of one side become one turn
    # (parallel tool results in particular must arrive together).
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _user_parts(message: ChatMessage, where: str) -> list[dict[str, Any]]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_media(image_url_of(part)))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format', 'wav')}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            if file.get("file_data"):
                parts.append(_media(str(file["file_data"]), "application/pdf"))
            elif file.get("file_id"):
                uri = str(file["file_id"])
                parts.append(
                    {"fileData": {"mimeType": mime_of_url(uri, "application/pdf"), "fileUri": uri}}
                )
        else:
            raise InvalidRequest(
                f"{where}.content[{j}].type {kind!r} is not supported for gemini/ models",
                param=f"{where}.content[{j}].type",
            )
    return parts


def _media(url: str, default_mime: str = "image/jpeg") -> dict[str, Any]:
    inline = parse_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    return {"fileData": {"mimeType": mime_of_url(url, default_mime), "fileUri": url}}


def _assistant_parts(
    message: ChatMessage, where: str, names_by_id: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.content)
    if text:
        parts.append({"text": text})
    for j, call in enumerate(message.tool_calls or ()):
        names_by_id[call.id] = call.function.name
        part: dict[str, Any] = {
            "functionCall": {
                "name": call.function.name,
                "args": arguments_object(call, f"{where}.tool_calls[{j}]"),
            }
        }
        _, mark, signature = call.id.partition(SIGNATURE_MARK)
        if mark and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _tool_result(message: ChatMessage, names_by_id: dict[str, str]) -> dict[str, Any]:
    name = names_by_id.get(message.tool_call_id or "") or message.name or ""
    text = text_of(message.content)
    # functionResponse.response must be an object: a JSON object result goes as it is,
    # anything else under "content".
    parsed = loads_object(text.encode()) if text.lstrip().startswith("{") else None
    response = parsed if parsed is not None else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(function: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    parameters = function.parameters
    # Gemini rejects an OBJECT schema without properties: a function without arguments
    # is declared without parameters.
    if parameters and parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def _tool_config(chat: ChatRequest) -> dict[str, Any] | None:
    choice = chat.choice()
    forced = chat.forced_tool()
    if forced is not None:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [forced]}}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}.get(str(choice))
    if mode is None:
        return None
    return {"functionCallingConfig": {"mode": mode}}


def _generation_config(chat: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("temperature", chat.temperature),
        ("topP", chat.top_p),
        ("topK", chat.top_k),
        ("maxOutputTokens", chat.output_limit()),
        ("seed", chat.seed),
        ("presencePenalty", chat.presence_penalty),
        ("frequencyPenalty", chat.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    stops = chat.stop_list()
    if stops:
        config["stopSequences"] = stops
    fmt = chat.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.json_schema or {}).get("schema")
        if fmt.type == "json_schema" and isinstance(schema, dict):
            config["responseSchema"] = gemini_schema(schema)
    return config


# Gemini's Schema is an OpenAPI subset: other JSON Schema keywords are rejected with a 400.
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
        "maximum",
    }
)  # fmt: skip
_FORMATS = {
    "string": {"enum", "date-time"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's ``Schema``: ``$ref``s inlined, unknown keywords dropped."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    converted: dict[str, Any] = _convert(schema, definitions, 0)
    return converted


def _convert(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict):
        return node
    if depth > 32:
        raise InvalidRequest("a JSON schema nests too deep (or refers to itself) for Gemini")
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref.rsplit("/", 1)[-1])
        if target is None:
            raise InvalidRequest(f"a JSON schema refers to {ref!r}, which it does not define")
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions, depth + 1)
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else None
    if "const" in node and "enum" not in node:
        node = {**node, "enum": [node["const"]]}
    for key, value in node.items():
        if key not in _SCHEMA_KEYS or key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _convert(v, definitions, depth + 1) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, definitions, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [v for v in value if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(options) < len(value):
                out["nullable"] = True
            if len(options) == 1:
                out.update(_convert(options[0], definitions, depth + 1))
            else:
                out[key] = [_convert(v, definitions, depth + 1) for v in options]
        elif key == "format":
            if isinstance(kind, str) and value in _FORMATS.get(kind, ()):
                out[key] = value
        elif key == "enum" and isinstance(value, list):
            out[key] = [str(v) for v in value]
            kind = "string"
        else:
            out[key] = value
    if isinstance(kind, str):
        out["type"] = kind.upper()
    return out


# -- response ------------------------------------------------------------------------------
def _usage(meta: _UsageMetadata | None) -> Usage | None:
    if meta is None:
        return None
    # OpenAI's meaning: the prompt includes cached and tool-use prompt tokens, the
    # completion includes the thinking tokens.
    return usage(
        meta.prompt_token_count + meta.tool_use_prompt_token_count,
        meta.candidates_token_count + meta.thoughts_token_count,
        cached=meta.cached_content_token_count,
        reasoning=meta.thoughts_token_count,
    )


def _call_id(part: _Part) -> str:
    ident = part.function_call.id if part.function_call and part.function_call.id else None
    ident = ident or tool_call_id()
    if part.thought_signature:
        ident += SIGNATURE_MARK + part.thought_signature
    return ident


def _finish(reason: str | None, has_calls: bool) -> str:
    mapped = _FINISH.get(reason or "STOP", "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def translate_response(raw: bytes, model: str, deployment: Deployment) -> Reply:
    try:
        decoded = _response_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamError("the upstream sent a reply that is not Gemini's JSON") from exc
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    finish = "content_filter" if _blocked(decoded) else "stop"
    if decoded.candidates:
        candidate = decoded.candidates[0]
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                arguments = orjson.dumps(part.function_call.args or {}).decode()
                calls.append(tool_call_json(_call_id(part), part.function_call.name, arguments))
            elif part.text is not None:
                (thoughts if part.thought else texts).append(part.text)
        finish = _finish(candidate.finish_reason, bool(calls))
    text = "".join(texts)
    found = _usage(decoded.usage_metadata)
    body = chat_completion(
        ident=_ident(decoded.response_id),
        model=model,
        content=text or (None if calls or finish == "content_filter" else ""),
        tool_calls=calls,
        finish_reason=finish,
        usage=found,
        reasoning="".join(thoughts) or None,
    )
    return Reply(body=body, usage=found)


def _blocked(response: _Response) -> bool:
    feedback = response.prompt_feedback
    return not response.candidates and feedback is not None and bool(feedback.block_reason)


def _ident(response_id: str | None) -> str:
    return "chatcmpl-" + (response_id or uuid.uuid4().hex)


class GeminiStream:
    """Gemini's SSE events in, OpenAI ``chat.completion.chunk`` events out.

    Each event is a whole ``GenerateContentResponse`` carrying the next text, or whole
    function calls, and (cumulative) ``usageMetadata``; the last carries ``finishReason``.
    There is no end-of-stream event.
    """

    def __init__(self, model: str, deployment: Deployment, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self._deployment = deployment
        self._include_usage = include_usage
        self._model = model
        self._writer: ChunkWriter | None = None
        self._calls = 0
        self._finished = False

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for out in translate_events(chunks, self.on):
            yield out
        if not self._finished:
            raise UpstreamUnreachable("the upstream stream ended before its last event")
        writer = self._writer_for(None)
        yield writer.usage_chunk(self.usage or usage(0, 0)) + writer.done()

    def _writer_for(self, response_id: str | None) -> ChunkWriter:
        if self._writer is None:
            self._writer = ChunkWriter(
                _ident(response_id), self._model, include_usage=self._include_usage
            )
        return self._writer

    def on(self, event: SSEEvent) -> bytes:
        if not event.data.strip():
            return b""
        try:
            decoded = _response_decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("the upstream sent an event that is not Gemini's JSON") from exc
        if decoded.error is not None:
            raise _error_from(decoded.error, 500, self._deployment)
        found = _usage(decoded.usage_metadata)
        if found is not None:
            self.usage = found
        first = self._writer is None
        writer = self._writer_for(decoded.response_id)
        out = [writer.role()] if first else []
        if self._finished:
            return b"".join(out)
        if _blocked(decoded):
            self._finished = True
            out.append(writer.finish("content_filter"))
        for candidate in decoded.candidates[:1]:
            for part in candidate.content.parts if candidate.content else ():
                call = part.function_call
                if call is not None:
                    # Gemini sends a call whole: its arguments go out in the first delta.
                    arguments = orjson.dumps(call.args or {}).decode()
                    out.append(
                        writer.tool_call_start(self._calls, _call_id(part), call.name, arguments)
                    )
                    self._calls += 1
                elif part.text:
                    piece = part.text
                    out.append(writer.reasoning(piece) if part.thought else writer.text(piece))
            if candidate.finish_reason:
                self._finished = True
                out.append(writer.finish(_finish(candidate.finish_reason, self._calls > 0)))
        return b"".join(out)


# -- errors --------------------------------------------------------------------------------
def gemini_error(status: int, raw: bytes, deployment: Deployment) -> TollwayError:
    """Gemini's ``{"error": {"code", "message", "status", "details"}}`` as the contract's."""
    decoded = loads_object(raw) or {}
    error = decoded.get("error")
    if not isinstance(error, dict):
        error = {"message": raw.decode("utf-8", "replace")[:500] if raw else ""}
    return _error_from(error, status, deployment)


def _error_from(error: dict[str, Any], status: int, deployment: Deployment) -> TollwayError:
    if isinstance(error.get("code"), int):
        status = error["code"]
    message = str(error.get("message") or f"the upstream returned HTTP {status}")
    code = error.get("status")
    retry_after = None
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        # An invalid key is a 400 INVALID_ARGUMENT to Gemini; to the client it is what it is.
        if detail.get("reason") == "API_KEY_INVALID":
            status, code = 401, "API_KEY_INVALID"
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                retry_after = str(max(1, round(float(delay[:-1]))))
    return provider_error(
        status,
        message,
        deployment,
        code=str(code) if code else None,
        retry_after=retry_after,
    )
