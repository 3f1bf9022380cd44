"""Pure helpers several dialects share: data URLs, MIME guesses, turn merging, tool-call
arguments, finish-reason tables, JSON objects, the "not supported" error, and reading an
upstream's error reply (the OpenAI-style envelope, the contract's type for a 4xx status, and
the exception a relayed ``Fault`` becomes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from ..errors import InvalidRequest, UpstreamStatusError
from ..model import FinishReason, Message, ToolCall
from .base import Fault

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,")

_MODEL_LIMIT = 256

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


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → ``("image/png", "AAAA")``; None for other URLs."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group("mime") or "application/octet-stream", url[match.end() :]


def mime_of_url(url: str, default: str = "image/jpeg") -> str:
    """A MIME type guessed from a URL's file suffix (no ``mimetypes``: it reads files)."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _MIME_BY_SUFFIX.get(suffix, default)


def append_turn(
    turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], key: str = "content"
) -> None:
    """Add ``blocks`` as a ``role`` turn, or to the last turn when it is ``role``'s too.

    Anthropic, Gemini and Bedrock want user and assistant turns to alternate: consecutive
    messages of one side become one turn (parallel tool results in particular must arrive
    together).
    """
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: blocks})


def arguments_value(arguments: str | dict[str, Any] | None) -> Any:
    """Tool-call arguments as a JSON value (``{}`` when there are none); raises
    ``orjson.JSONDecodeError`` for text that is not JSON."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    return orjson.loads(arguments)


def arguments_object(call: ToolCall, where: str) -> dict[str, Any]:
    """A tool call's arguments as a JSON object (the form most providers want)."""
    try:
        value = arguments_value(call.function.arguments)
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


def system_text_blocks(messages: list[Message]) -> list[dict[str, Any]]:
    """The system and developer messages' texts as ``{"text": ...}`` blocks (Bedrock's
    ``system``, Gemini's ``systemInstruction`` parts); empty ones are left out."""
    return [
        {"text": text}
        for message in messages
        if message.role in ("system", "developer") and (text := message.text())
    ]


def finish_reason(table: Mapping[str, str], reason: str | None, has_calls: bool) -> FinishReason:
    """A provider's stop reason in OpenAI's words; a plain stop that called tools is
    ``tool_calls``."""
    mapped = table.get(reason, "stop") if reason else "stop"
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def check_model(model: object, param: str = "model") -> str:
    """Every inbound request names its model: a non-empty string of at most 256 characters
    (``param``: the field that names it). Returns the model."""
    if not isinstance(model, str) or not model or len(model) > _MODEL_LIMIT:
        raise InvalidRequest(
            f"`{param}` must be a non-empty string of at most 256 characters", param=param
        )
    return model


def unsupported(field: str, value: object, provider: str) -> InvalidRequest:
    """The error for a role or content part type the provider has no place for."""
    return InvalidRequest(f"{field} {value!r} is not supported for {provider} models", param=field)


def loads_object(raw: bytes) -> dict[str, Any] | None:
    """A JSON object from ``raw``, or None when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# -- error replies --------------------------------------------------------------------------
# The contract's error type for a 4xx the gateway relays (5xx is answered as 502).
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_FIELD_LIMIT = 200


def error_type(status: int) -> str:
    """The contract's error type for an upstream's 4xx ``status``."""
    return _TYPE_BY_STATUS.get(status, "invalid_request_error")


def upstream_failure(
    status: int, message: str, upstream_status: int | None = None
) -> UpstreamStatusError:
    """An upstream's 5xx ``status`` as the contract's retryable 502 that names it."""
    return UpstreamStatusError(
        502,
        f"upstream error ({status}): {message}",
        type="upstream_error",
        code=str(status),
        upstream_status=upstream_status,
    )


def relayed_error(fault: Fault, retry_after: str | None = None) -> UpstreamStatusError:
    """The contract's exception for a ``Fault`` (its message not scrubbed here): 4xx keeps
    the status (429 stays retryable for the router); 5xx becomes a retryable 502."""
    status = fault.status
    if status >= 500:
        return upstream_failure(status, fault.message)
    return UpstreamStatusError(
        status, fault.message, type=error_type(status), code=fault.code, retry_after=retry_after
    )


class _ErrorEnvelope(msgspec.Struct):
    error: Any = None
    message: Any = None
    detail: Any = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def envelope_fault(status: int, body: bytes) -> Fault:
    """An OpenAI-style error reply (also Anthropic's, and most compatible servers'):
    ``{"error": {message, type, param, code}}``, or a bare ``error``/``message``/``detail``."""
    message, type_, param, code = f"the upstream returned HTTP {status}", None, None, None
    try:
        envelope: _ErrorEnvelope | None = _error_decoder.decode(body)
    except msgspec.DecodeError:
        envelope = None
    if envelope is not None:
        err = envelope.error
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            type_ = _short(err.get("type"))
            param = _short(err.get("param"))
            code = _short(err.get("code"))
        elif isinstance(err, str):
            message = err
        elif isinstance(envelope.message, str):
            message = envelope.message
        elif isinstance(envelope.detail, str):
            message = envelope.detail
    return Fault(status=status, message=message, type=type_, param=param, code=code)


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:_FIELD_LIMIT]
