"""What the Gemini and Cohere adapters share beyond ``proxy.formats.translate``.

``decode_chat`` decodes the client's OpenAI chat body in full into typed structs (the parse
stage validates only what routing needs); ``provider_error`` turns a provider's error reply
into the contract's exception with the key scrubbed; ``read_all`` reads a reply within the
deployment's deadline. Replies and chunks are built with ``proxy.formats.translate``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError, UpstreamStatusError, UpstreamTimeout
from ..parse import ParsedRequest
from ..upstream import Deadlines, UpstreamResponse
from .base import Deployment
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


# -- replies -------------------------------------------------------------------------------
def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


# -- the provider's side of the wire ---------------------------------------------------------
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
    """The contract's error for a provider's error reply, the key scrubbed from its text.

    4xx keeps the provider's status (429 stays retryable for the router); 5xx becomes 502.
    """
    message = scrub(message[:2000], deployment)
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
