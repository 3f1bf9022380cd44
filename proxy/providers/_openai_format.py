"""What the translating adapters share beyond ``proxy.formats.translate``.

``decode_chat`` decodes the client's OpenAI chat body in full into typed structs (the parse
stage validates only what routing needs); ``ChunkStream`` is the frame of a stream translator
(one ``ChunkWriter``, the closing usage chunk and ``[DONE]``); ``json_headers``,
``text_inputs`` and ``embedding_list`` are the plain-JSON wire's common ends;
``provider_error`` turns a provider's error reply into the contract's exception with the key
scrubbed; ``read_all`` reads a reply within the deployment's deadline. Replies and chunks are
built with ``proxy.formats.translate``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
import orjson

from ..errors import (
    InvalidRequest,
    TollwayError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from ..formats.translate import ChunkWriter, SSEEvent, translate_events, usage
from ..parse import EmbeddingBody, Kind, ParsedRequest
from ..upstream.transport import Deadlines, UpstreamResponse
from ..usage import Usage
from .base import EVENT_STREAM, Deployment, Reply
from .openai import scrub


# -- the client's request ------------------------------------------------------------------
class FunctionCall(msgspec.Struct, kw_only=True):
    name: str = ""
    # A string of JSON in OpenAI's format; some clients send the object itself.
    arguments: str | dict[str, Any] | None = None


class ToolCall(msgspec.Struct, kw_only=True):
    id: str = ""
    type: str = "function"
    function: FunctionCall = msgspec.field(default_factory=FunctionCall)


class ChatMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Function(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, kw_only=True):
    type: str = "function"
    function: Function


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: str = "text"
    json_schema: dict[str, Any] | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    messages: list[ChatMessage]
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # The deprecated spelling of tools, still sent by older clients.
    functions: list[Function] | None = None
    function_call: str | dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None

    def tool_list(self) -> list[Tool]:
        if self.tools:
            return self.tools
        return [Tool(function=f) for f in self.functions or ()]

    def choice(self) -> str | dict[str, Any] | None:
        """``tool_choice`` with the deprecated ``function_call`` spelt as a tool choice."""
        if self.tool_choice is not None:
            return self.tool_choice
        call = self.function_call
        if isinstance(call, dict) and "name" in call:
            return {"type": "function", "function": {"name": call["name"]}}
        return call

    def output_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def forced_tool(self) -> str | None:
        """The function name when ``tool_choice`` names one."""
        choice = self.choice()
        if isinstance(choice, dict):
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                return str(function["name"])
        return None


_chat_decoder = msgspec.json.Decoder(ChatRequest)


def decode_chat(request: ParsedRequest) -> ChatRequest:
    """The client's whole chat body (the parse stage validated only what routing needs)."""
    try:
        return _chat_decoder.decode(request.body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc


def refuse_legacy_completions(request: ParsedRequest, provider: str) -> None:
    """Adapters that serve chat and embeddings only refuse ``/v1/completions``."""
    if request.kind not in (Kind.CHAT, Kind.EMBEDDING):
        raise InvalidRequest(
            f"{provider} models serve /v1/chat/completions and /v1/embeddings, "
            "not legacy /v1/completions"
        )


def unsupported(field: str, value: object, provider: str) -> InvalidRequest:
    """The error for a role or content part type the provider has no place for."""
    return InvalidRequest(f"{field} {value!r} is not supported for {provider} models", param=field)


def arguments_text(call: ToolCall) -> str:
    arguments = call.function.arguments
    if arguments is None:
        return "{}"
    if isinstance(arguments, dict):
        return orjson.dumps(arguments).decode()
    return arguments or "{}"


def arguments_object(call: ToolCall, where: str) -> dict[str, Any]:
    """A tool call's arguments as a JSON object (the form Gemini and others want)."""
    arguments = call.function.arguments
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{where}.function.arguments is not valid JSON", param=f"{where}.function.arguments"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{where}.function.arguments must be a JSON object",
            param=f"{where}.function.arguments",
        )
    return value


_MIME_BY_SUFFIX = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "mp4": "video/mp4",
}


def mime_of_url(url: str, default: str = "image/jpeg") -> str:
    """A MIME type guessed from a URL's file suffix (no ``mimetypes``: it reads files)."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _MIME_BY_SUFFIX.get(suffix, default)


def image_url_of(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    if isinstance(image, dict):
        return str(image.get("url", ""))
    return str(image or "")


def text_inputs(request: ParsedRequest, provider: str) -> list[str]:
    """An embeddings request's inputs, which must be text."""
    typed = request.typed
    assert isinstance(typed, EmbeddingBody)
    inputs = [typed.input] if isinstance(typed.input, str) else list(typed.input)
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(f"{provider} embeddings take text inputs", param="input")
    return inputs


# -- replies -------------------------------------------------------------------------------
def completion_id(upstream_id: str | None = None) -> str:
    return "chatcmpl-" + (upstream_id or uuid.uuid4().hex)


def tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def finish_reason(table: Mapping[str, str], reason: str | None, has_calls: bool) -> str:
    """The provider's stop reason in OpenAI's words; a plain stop that called tools is
    ``tool_calls``."""
    mapped = table.get(reason, "stop") if reason else "stop"
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def embedding_list(vectors: list[Any], model: str, tokens: int | None) -> bytes:
    """An OpenAI embeddings ``list`` body; ``usage`` only when the token count is known."""
    payload: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
    }
    if tokens is not None:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(payload)


class ChunkStream:
    """A provider's SSE events in, OpenAI ``chat.completion.chunk`` events out.

    Subclasses translate one event in ``on``, making the writer with ``writer_for`` on the
    first one and setting ``finished`` on the last; the stream then closes with the usage
    chunk and ``[DONE]``.
    """

    #: What the error names when the stream stops before its end.
    last_event = "last event"

    def __init__(self, model: str, deployment: Deployment, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self.deployment = deployment
        self.finished = False
        self._include_usage = include_usage
        self._model = model
        self._writer: ChunkWriter | None = None

    def reply(self, resp: UpstreamResponse) -> Reply:
        return Reply(
            content_type=EVENT_STREAM,
            chunks=self.run(resp.iter_chunks()),
            usage_of_stream=lambda: self.usage,
            close=resp.close,
        )

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for out in translate_events(chunks, self.on):
            yield out
        if not self.finished:
            raise UpstreamUnreachable(f"the upstream stream ended before its {self.last_event}")
        writer = self.writer_for(None)
        yield writer.usage_chunk(self.usage or usage(0, 0)) + writer.done()

    @property
    def started(self) -> bool:
        return self._writer is not None

    def writer_for(self, upstream_id: str | None) -> ChunkWriter:
        if self._writer is None:
            self._writer = ChunkWriter(
                completion_id(upstream_id), self._model, include_usage=self._include_usage
            )
        return self._writer

    def on(self, event: SSEEvent) -> bytes:
        raise NotImplementedError


# -- the provider's side of the wire ---------------------------------------------------------
def json_headers(
    deployment: Deployment, stream: bool, key_header: str, key_prefix: str = ""
) -> dict[str, str]:
    """Headers of a JSON request, the key in ``key_header``, the deployment's extras last."""
    out = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "accept-encoding": "identity",
    }
    if deployment.api_key:
        out[key_header] = key_prefix + deployment.api_key
    if deployment.params.extra_headers:
        out.update(deployment.params.extra_headers)
    return out


async def read_all(resp: UpstreamResponse, deadlines: Deadlines) -> bytes:
    """A non-streaming reply's whole body, within the deployment's total deadline."""
    try:
        if deadlines.total is not None:
            async with asyncio.timeout(deadlines.total):
                return await resp.read()
        return await resp.read()
    except TimeoutError as exc:
        resp.close()
        raise UpstreamTimeout(f"the upstream took over {deadlines.total:g}s") from exc


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def provider_error(
    status: int,
    message: str,
    deployment: Deployment,
    *,
    code: str | None = None,
    retry_after: str | None = None,
) -> TollwayError:
    """The contract's error for a provider's error reply, the key scrubbed from its text."""
    return status_error(status, scrub(message[:2000], deployment), code, retry_after)


def status_error(
    status: int, message: str, code: str | None, retry_after: str | None
) -> UpstreamStatusError:
    """4xx keeps the provider's status (429 stays retryable for the router); 5xx becomes 502.

    ``message`` must already be scrubbed of secrets.
    """
    if status >= 500:
        return UpstreamStatusError(
            502, f"upstream error ({status}): {message}", type="upstream_error", code=str(status)
        )
    return UpstreamStatusError(
        status,
        message,
        type=_TYPE_BY_STATUS.get(status, "invalid_request_error"),
        code=code,
        retry_after=retry_after,
    )


def loads_object(raw: bytes) -> dict[str, Any] | None:
    """A JSON object from ``raw``, or None when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
