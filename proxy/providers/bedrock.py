"""``bedrock/``: Amazon Bedrock's Converse and ConverseStream APIs, signed with SigV4.

``POST {endpoint}/model/{modelId}/converse`` (or ``/converse-stream``), where the endpoint
is ``litellm_params.api_base`` or ``https://bedrock-runtime.{region}.amazonaws.com``.
Requests are signed by botocore's ``SigV4Auth`` (CPU only, so it runs on the loop);
credentials come from ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token`` / ``aws_region_name`` in ``litellm_params`` or the ``AWS_*``
environment variables; with no key pair, a Bedrock API key (``api_key`` or
``AWS_BEARER_TOKEN_BEDROCK``) goes in ``Authorization: Bearer``. The secret key itself
never leaves the process: only the signature made with it does.

Translation both ways:
- ``system``/``developer`` messages → ``system``; ``tool`` messages → ``toolResult`` blocks in
  a user turn; assistant ``tool_calls`` → ``toolUse`` blocks; images must be data URLs
  (their base64 goes in ``image.source.bytes``); consecutive turns of one role are merged
  because Converse wants user and assistant to alternate.
- ``tools`` → ``toolConfig.tools[].toolSpec``; ``tool_choice`` auto/required/named →
  ``auto``/``any``/``tool`` (``none`` sends no tools unless the history needs them).
- ``response_format``: Converse has no JSON mode, so ``json_object`` adds an instruction to
  the system prompt, and ``json_schema`` forces a tool whose input schema is the schema and
  returns that tool's input as the message text (``finish_reason`` ``stop``).
- ``ConverseStream``'s binary event stream (``eventstream.py``) → ``chat.completion.chunk``
  SSE, with tool-call argument deltas; usage from the ``metadata`` event.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import msgspec
import orjson
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from ..errors import (
    InvalidRequest,
    TollwayError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..formats.translate import (
    ChunkWriter,
    chat_completion,
    parse_data_url,
    text_of,
    tool_call_json,
)
from ..formats.translate import usage as make_usage
from ..parse import Kind, ParsedRequest
from ..upstream import Transport, UpstreamResponse
from ..usage import Usage
from ._openai_format import (
    ChatRequest,
    arguments_object,
    completion_id,
    decode_chat,
    image_url_of,
    loads_object,
    read_all,
)
from .base import EVENT_STREAM, Deployment, Reply
from .eventstream import EventMessage, EventStreamDecoder, EventStreamError

SERVICE = "bedrock"
DEFAULT_REGION = "us-west-2"  # LiteLLM's default, so its configs behave the same
JSON_TOOL = "json_response"
JSON_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_EVENTSTREAM = "application/vnd.amazon.eventstream"
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}")

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
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class Signer:
    """Where one deployment's calls go and how they are authenticated."""

    __slots__ = ("_auth", "bearer", "endpoint", "region", "secrets")

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Credentials | None,
        bearer: str | None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.bearer = bearer
        self._auth = SigV4Auth(credentials, SERVICE, region) if credentials else None
        secrets = [bearer]
        if credentials is not None:
            secrets += [credentials.secret_key, credentials.token, credentials.access_key]
        self.secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def headers(self, url: str, body: bytes, stream: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": _EVENTSTREAM if stream else "application/json",
        }
        if self._auth is None:
            if self.bearer:
                headers["authorization"] = f"Bearer {self.bearer}"
        else:
            signed = AWSRequest(method="POST", url=url, data=body, headers=headers)
            self._auth.add_auth(signed)
            headers = {name.lower(): value for name, value in signed.headers.items()}
        # Added after signing (so not signed): the relay reads the bytes uncompressed.
        headers["accept-encoding"] = "identity"
        return headers

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


def make_signer(deployment: Deployment, environ: Mapping[str, str]) -> Signer:
    params = deployment.params
    region = (
        params.aws_region_name
        or params.region_name
        or environ.get("AWS_REGION_NAME")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    endpoint = deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
    access_key, secret_key = params.aws_access_key_id, params.aws_secret_access_key
    token = params.aws_session_token
    if not (access_key and secret_key):
        access_key = environ.get("AWS_ACCESS_KEY_ID")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
        token = environ.get("AWS_SESSION_TOKEN")
    credentials = None
    if access_key and secret_key:
        credentials = Credentials(access_key, secret_key, token or None)
    bearer = deployment.api_key or environ.get("AWS_BEARER_TOKEN_BEDROCK")
    return Signer(endpoint, region, credentials, bearer)


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


# -- request ---------------------------------------------------------------------------------
def to_converse(chat: ChatRequest) -> tuple[dict[str, Any], str | None]:
    """The Converse request for an OpenAI chat request, and the JSON tool's name if forced."""
    if chat.n is not None and chat.n > 1:
        raise InvalidRequest("bedrock/ deployments return one choice; `n` must be 1", param="n")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    used_tools: set[str] = set()
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.role
        if role in ("system", "developer"):
            text = text_of(message.content)
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            blocks = _user_blocks(message.content, where)
        elif role == "assistant":
            blocks = []
            text = text_of(message.content)
            if text:
                blocks.append({"text": text})
            for j, call in enumerate(message.tool_calls or ()):
                used_tools.add(call.function.name)
                tool_use = {
                    "toolUseId": call.id,
                    "name": call.function.name,
                    "input": arguments_object(call, f"{where}.tool_calls[{j}]"),
                }
                blocks.append({"toolUse": tool_use})
            role = "assistant"
        elif role in ("tool", "function"):
            if not message.tool_call_id:
                raise InvalidRequest(
                    f"{where}.tool_call_id is required", param=f"{where}.tool_call_id"
                )
            result = text_of(message.content)
            blocks = [
                {
                    "toolResult": {
                        "toolUseId": message.tool_call_id,
                        "content": [{"text": result}] if result else [],
                        "status": "success",
                    }
                }
            ]
            role = "user"
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    payload: dict[str, Any] = {"messages": turns}

    json_tool = None
    response_format = chat.response_format
    tool_specs = [
        _tool_spec(t.function.name, t.function.description, t.function.parameters)
        for t in chat.tool_list()
    ]
    tool_choice: dict[str, Any] | None = None
    choice = chat.choice()
    if choice == "required":
        tool_choice = {"any": {}}
    elif choice == "auto":
        tool_choice = {"auto": {}}
    elif (forced := chat.forced_tool()) is not None:
        tool_choice = {"tool": {"name": forced}}
    elif choice == "none" and not used_tools:
        tool_specs = []
    if response_format is not None and response_format.type == "json_object":
        system.append({"text": JSON_INSTRUCTION})
    elif response_format is not None and response_format.type == "json_schema":
        schema = (response_format.json_schema or {}).get("schema") or {"type": "object"}
        json_tool = JSON_TOOL
        tool_specs.append(
            _tool_spec(JSON_TOOL, "Give the answer as this tool's input, in this schema.", schema)
        )
        tool_choice = {"tool": {"name": JSON_TOOL}}
    # Converse refuses toolUse/toolResult blocks unless toolConfig names those tools.
    declared = {spec["toolSpec"]["name"] for spec in tool_specs}
    for name in sorted(used_tools - declared):
        tool_specs.append(_tool_spec(name, None, None))
    if tool_specs:
        tool_config: dict[str, Any] = {"tools": tool_specs}
        if tool_choice is not None:
            tool_config["toolChoice"] = tool_choice
        payload["toolConfig"] = tool_config
    if system:
        payload["system"] = system

    inference: dict[str, Any] = {}
    if (limit := chat.output_limit()) is not None:
        inference["maxTokens"] = limit
    if chat.temperature is not None:
        inference["temperature"] = chat.temperature
    if chat.top_p is not None:
        inference["topP"] = chat.top_p
    if stops := chat.stop_list():
        inference["stopSequences"] = stops
    if inference:
        payload["inferenceConfig"] = inference
    if chat.top_k is not None:
        payload["additionalModelRequestFields"] = {"top_k": chat.top_k}
    if chat.user and _METADATA_VALUE.fullmatch(chat.user):
        payload["requestMetadata"] = {"user": chat.user}
    return payload, json_tool


def _tool_spec(
    name: str, description: str | None, parameters: dict[str, Any] | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "inputSchema": {"json": parameters or {"type": "object", "properties": {}}},
    }
    if description:
        spec["description"] = description
    return {"toolSpec": spec}


def _user_blocks(content: str | list[dict[str, Any]] | None, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        kind = part.get("type", "text")
        if kind == "text":
            text = str(part.get("text", ""))
            if text:
                blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image_block(image_url_of(part), f"{where}.content[{k}]"))
        else:
            raise InvalidRequest(
                f"{where}.content[{k}]: part type {kind!r} is not supported by bedrock/",
                param=f"{where}.content",
            )
    return blocks


def _image_block(url: str, where: str) -> dict[str, Any]:
    parts = parse_data_url(url)
    if parts is None:
        raise InvalidRequest(
            f"{where}: bedrock/ takes images as base64 data URLs (data:image/png;base64,...)",
            param=where,
        )
    mime, data = parts
    subtype = mime.rpartition("/")[2].lower()
    image_format = _IMAGE_FORMATS.get(subtype)
    if image_format is None:
        raise InvalidRequest(
            f"{where}: image type {mime!r} is not one of png, jpeg, gif, webp", param=where
        )
    # A blob in Converse's JSON is base64 text, so the client's base64 goes as it is.
    return {"image": {"format": image_format, "source": {"bytes": data}}}


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
    if status >= 500:
        return UpstreamStatusError(
            502, f"upstream error ({status}): {label}", type="upstream_error", code=str(status)
        )
    return UpstreamStatusError(
        status,
        label,
        type=_TYPE_BY_STATUS.get(status, "invalid_request_error"),
        code=kind or None,
        retry_after=retry_after,
    )
