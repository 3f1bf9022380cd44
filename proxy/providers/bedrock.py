"""``bedrock/``: Amazon Bedrock's Converse and ConverseStream APIs, signed with SigV4.

``POST {endpoint}/model/{modelId}/converse`` (or ``/converse-stream``), where the endpoint
is ``litellm_params.api_base`` or ``https://bedrock-runtime.{region}.amazonaws.com``.
Signing and credentials are ``bedrock_signing``'s; the request is built by
``bedrock_request``. Replies come back as ``chat.completion`` bodies (the JSON-mode tool's
input as the message text, ``finish_reason`` ``stop``), and ``ConverseStream``'s binary
event stream (``eventstream.py``) as ``chat.completion.chunk`` SSE, with tool-call argument
deltas; usage from the ``metadata`` event.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from ..errors import (
    InvalidRequest,
    TollwayError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..formats.translate import ChunkWriter, chat_completion, tool_call_json
from ..formats.translate import usage as make_usage
from ..parse import Kind, ParsedRequest
from ..upstream.transport import Transport, UpstreamResponse
from ..usage import Usage
from ._openai_format import completion_id, decode_chat, loads_object, read_all, status_error
from .base import EVENT_STREAM, Deployment, Reply
from .bedrock_request import to_converse
from .bedrock_signing import Signer, make_signer
from ..upstream.eventstream import EventMessage, EventStreamDecoder, EventStreamError

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}

# Bedrock's exception names → the status the gateway answers with. 5xx become 502 for the
# client and, like 429, are retryable for the router.
ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 429,
    "UnrecognizedClientException": 401,
    "InvalidSignatureException": 401,
    "IncompleteSignatureException": 401,
    "MissingAuthenticationTokenException": 401,
    "ExpiredTokenException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ModelErrorException": 500,
    "ModelStreamErrorException": 500,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 503,
}


class BedrockProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        # deployment id → (the params it was made from, its signer): resolved once.
        self._signers: dict[str, tuple[object, Signer]] = {}

    def signer(self, deployment: Deployment) -> Signer:
        cached = self._signers.get(deployment.id)
        if cached is not None and cached[0] is deployment.params:
            return cached[1]
        signer = make_signer(deployment, os.environ)
        self._signers[deployment.id] = (deployment.params, signer)
        return signer

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        if request.kind is not Kind.CHAT:
            raise InvalidRequest(
                f"bedrock/ deployments serve chat completions, not {request.kind.value}"
            )
        chat = decode_chat(request)
        payload, json_tool = to_converse(chat)
        body = orjson.dumps(payload)
        signer = self.signer(deployment)
        model_id = upstream_model.removeprefix("converse/")
        # ':' stays as it is and '/' (in ARNs) is escaped: that is the form both aiohttp
        # and the lean client put on the wire, so the signed path is the sent path.
        action = "converse-stream" if request.stream else "converse"
        url = f"{signer.endpoint}/model/{quote(model_id, safe=':')}/{action}"
        headers = signer.headers(url, body, request.stream)
        if "authorization" not in headers:
            raise UpstreamStatusError(
                401,
                "no AWS credentials for this bedrock/ deployment: set aws_access_key_id and "
                "aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                type="authentication_error",
            )
        resp = await self._transport.post(url, body, headers, deployment.deadlines)
        if resp.status >= 400:
            raw = await read_all(resp, deployment.deadlines)
            raise bedrock_error(
                resp.status,
                raw,
                resp.header("x-amzn-errortype"),
                signer,
                resp.header("retry-after"),
            )
        ident = completion_id()
        if request.stream:
            translator = StreamTranslator(
                upstream_model,
                ident,
                wants_usage_chunk=request.wants_usage_chunk,
                json_tool=json_tool,
            )
            return Reply(
                content_type=EVENT_STREAM,
                chunks=_relay(resp, translator, signer),
                usage_of_stream=lambda: translator.usage,
                close=resp.close,
            )
        raw = await read_all(resp, deployment.deadlines)
        reply = loads_object(raw)
        if reply is None:
            raise UpstreamError("Bedrock answered with a body that is not a JSON object")
        answer, usage = from_converse(reply, json_tool)
        body = chat_completion(
            ident=ident,
            model=upstream_model,
            content=answer.text if answer.text or not answer.tool_calls else None,
            tool_calls=answer.tool_calls,
            finish_reason=answer.finish_reason,
            usage=usage,
            reasoning=answer.reasoning or None,
        )
        return Reply(body=body, usage=usage)


# -- response --------------------------------------------------------------------------------
def usage_of(raw: Any) -> Usage | None:
    """OpenAI usage from Converse's; cache reads and writes are counted in the prompt."""
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    prompt = int(raw.get("inputTokens") or 0) + cached + written
    return make_usage(prompt, int(raw.get("outputTokens") or 0), cached=cached)


class Answer(msgspec.Struct):
    text: str
    reasoning: str
    tool_calls: list[dict[str, Any]]
    finish_reason: str


def from_converse(reply: dict[str, Any], json_tool: str | None) -> tuple[Answer, Usage | None]:
    output = reply.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if "text" in block:
            texts.append(str(block["text"]))
        elif isinstance(tool_use := block.get("toolUse"), dict):
            arguments = orjson.dumps(tool_use.get("input") or {}).decode()
            if json_tool is not None and tool_use.get("name") == json_tool:
                texts.append(arguments)
            else:
                ident = str(tool_use.get("toolUseId", ""))
                calls.append(tool_call_json(ident, str(tool_use.get("name", "")), arguments))
        elif isinstance(thought := block.get("reasoningContent"), dict):
            text = (thought.get("reasoningText") or {}).get("text")
            if text:
                reasoning.append(str(text))
    finish = _finish_reason(reply.get("stopReason"), json_tool, bool(calls))
    answer = Answer(
        text="".join(texts), reasoning="".join(reasoning), tool_calls=calls, finish_reason=finish
    )
    return answer, usage_of(reply.get("usage"))


def _finish_reason(stop_reason: Any, json_tool: str | None, called: bool) -> str:
    finish = FINISH_REASONS.get(str(stop_reason), "stop")
    if finish == "tool_calls" and json_tool is not None and not called:
        return "stop"
    return finish


# -- stream ----------------------------------------------------------------------------------
class StreamTranslator:
    """ConverseStream events in, ``chat.completion.chunk`` SSE bytes out."""

    def __init__(
        self, model: str, ident: str, *, wants_usage_chunk: bool, json_tool: str | None
    ) -> None:
        self.writer = ChunkWriter(ident, model, include_usage=wants_usage_chunk)
        self.json_tool = json_tool
        self.usage: Usage | None = None
        self.stopped = False
        self._started = False
        self._called = False
        # contentBlockIndex → OpenAI tool-call index (-1: the JSON tool, read as text).
        self._tools: dict[int, int] = {}

    def event(self, kind: str, body: dict[str, Any]) -> bytes:
        writer = self.writer
        out = b""
        if not self._started:
            self._started = True
            out = writer.role()
        if kind == "contentBlockStart":
            start = body.get("start")
            tool = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(tool, dict):
                block = int(body.get("contentBlockIndex", 0))
                name = str(tool.get("name", ""))
                if self.json_tool is not None and name == self.json_tool:
                    self._tools[block] = -1
                else:
                    position = sum(1 for v in self._tools.values() if v >= 0)
                    self._tools[block] = position
                    self._called = True
                    out += writer.tool_call_start(position, str(tool.get("toolUseId", "")), name)
        elif kind == "contentBlockDelta":
            delta = body.get("delta")
            if isinstance(delta, dict):
                out += self._delta(int(body.get("contentBlockIndex", 0)), delta)
        elif kind == "messageStop":
            self.stopped = True
            out += writer.finish(
                _finish_reason(body.get("stopReason"), self.json_tool, self._called)
            )
        elif kind == "metadata":
            self.usage = usage_of(body.get("usage"))
            if self.usage is not None:
                out += writer.usage_chunk(self.usage)
        return out

    def _delta(self, block: int, delta: dict[str, Any]) -> bytes:
        writer = self.writer
        if "text" in delta:
            text = str(delta["text"])
            return writer.text(text) if text else b""
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            piece = str(tool.get("input") or "")
            position = self._tools.get(block)
            if not piece or position is None:
                return b""
            return (
                writer.text(piece) if position < 0 else writer.tool_call_arguments(position, piece)
            )
        thought = delta.get("reasoningContent")
        if isinstance(thought, dict) and thought.get("text"):
            return writer.reasoning(str(thought["text"]))
        return b""


async def _relay(
    resp: UpstreamResponse, translator: StreamTranslator, signer: Signer
) -> AsyncIterator[bytes]:
    decoder = EventStreamDecoder()
    async for chunk in resp.iter_chunks():
        try:
            messages = decoder.feed(chunk)
        except EventStreamError as exc:
            raise UpstreamError(f"Bedrock sent a corrupt event stream: {exc}") from exc
        out = b"".join([_translate(message, translator, signer) for message in messages])
        if out:
            yield out
    if not translator.stopped or decoder.pending:
        raise UpstreamError("the Bedrock stream ended before its messageStop event")
    yield ChunkWriter.done()


def _translate(message: EventMessage, translator: StreamTranslator, signer: Signer) -> bytes:
    message_type = message.header(":message-type") or "event"
    if message_type == "exception":
        kind = message.header(":exception-type") or "InternalServerException"
        raise bedrock_error(500, message.payload, kind, signer, None)
    if message_type == "error":
        kind = message.header(":error-code") or "InternalServerException"
        text = message.header(":error-message") or ""
        raise bedrock_error(500, orjson.dumps({"message": text}), kind, signer, None)
    kind = message.header(":event-type") or ""
    body = loads_object(message.payload) if message.payload else {}
    if body is None:
        raise UpstreamError(f"Bedrock sent a {kind or 'stream'} event that is not JSON")
    return translator.event(kind, body)


# -- errors ----------------------------------------------------------------------------------
def error_kind(error_type: str | None, body: dict[str, Any] | None) -> str:
    """``ThrottlingException`` from ``x-amzn-ErrorType``, ``__type`` or a stream's name."""
    raw = error_type or ""
    if not raw and body is not None:
        raw = str(body.get("__type") or body.get("code") or "")
    raw = raw.split(":", 1)[0].rpartition("#")[2].strip()
    return raw[:1].upper() + raw[1:]


def bedrock_error(
    status: int,
    raw: bytes,
    error_type: str | None,
    signer: Signer,
    retry_after: str | None,
) -> TollwayError:
    """The contract's error for a Bedrock error reply or stream exception, secrets scrubbed."""
    body = loads_object(raw)
    kind = error_kind(error_type, body)
    message = ""
    if body is not None:
        message = str(body.get("message") or body.get("Message") or "")
    message = signer.scrub((message or f"Bedrock returned HTTP {status}")[:2000])
    if kind == "ModelTimeoutException":
        return UpstreamTimeout(f"Bedrock: {message}")
    status = ERROR_STATUS.get(kind, status)
    label = f"{kind}: {message}" if kind else message
    return status_error(status, label, kind or None, retry_after)
