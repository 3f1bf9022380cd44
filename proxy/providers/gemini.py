"""``gemini/``: Google AI Studio's ``generateContent`` and ``streamGenerateContent?alt=sse``.

Requests are built by ``gemini_request``; replies come back as ``chat.completion`` bodies or
chunks. The key travels only in ``x-goog-api-key``, never in the URL, where proxies and
access logs would keep it.

Gemini streams a function call whole, in one event, and may attach a ``thoughtSignature``
that must come back with the call on the next turn. The signature rides inside the tool
call id the client sees (``<id>__thought__<signature>``) and is restored from it.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError, UpstreamError
from ..formats.translate import SSEEvent, chat_completion, tool_call_json, usage
from ..parse import Kind, ParsedRequest
from ..upstream.transport import Transport
from ..usage import Usage
from ._openai_format import (
    ChunkStream,
    completion_id,
    decode_chat,
    embedding_list,
    finish_reason,
    json_headers,
    loads_object,
    provider_error,
    read_all,
    refuse_legacy_completions,
    text_inputs,
    tool_call_id,
)
from .base import Deployment, Reply
from .gemini_request import SIGNATURE_MARK, build_request

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"

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
        refuse_legacy_completions(request, "gemini/")
        if request.kind is Kind.EMBEDDING:
            return await self._embed(request, deployment, upstream_model)
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
            return GeminiStream(upstream_model, deployment, request.wants_usage_chunk).reply(resp)
        raw = await read_all(resp, deployment.deadlines)
        return translate_response(raw, upstream_model, deployment)

    async def _embed(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        inputs = text_inputs(request, "gemini/")
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
        return Reply(body=embedding_list(vectors, upstream_model, tokens))


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
    return json_headers(deployment, stream, "x-goog-api-key")


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
        finish = finish_reason(_FINISH, candidate.finish_reason, bool(calls))
    text = "".join(texts)
    found = _usage(decoded.usage_metadata)
    body = chat_completion(
        ident=completion_id(decoded.response_id),
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


class GeminiStream(ChunkStream):
    """Gemini's SSE events in, OpenAI ``chat.completion.chunk`` events out.

    Each event is a whole ``GenerateContentResponse`` carrying the next text, or whole
    function calls, and (cumulative) ``usageMetadata``; the last carries ``finishReason``.
    There is no end-of-stream event.
    """

    def __init__(self, model: str, deployment: Deployment, include_usage: bool) -> None:
        super().__init__(model, deployment, include_usage)
        self._calls = 0

    def on(self, event: SSEEvent) -> bytes:
        if not event.data.strip():
            return b""
        try:
            decoded = _response_decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("the upstream sent an event that is not Gemini's JSON") from exc
        if decoded.error is not None:
            raise _error_from(decoded.error, 500, self.deployment)
        found = _usage(decoded.usage_metadata)
        if found is not None:
            self.usage = found
        first = not self.started
        writer = self.writer_for(decoded.response_id)
        out = [writer.role()] if first else []
        if self.finished:
            return b"".join(out)
        if _blocked(decoded):
            self.finished = True
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
                self.finished = True
                reason = finish_reason(_FINISH, candidate.finish_reason, self._calls > 0)
                out.append(writer.finish(reason))
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
