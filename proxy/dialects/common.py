"""Pure helpers several dialects share: data URLs, MIME guesses, turn merging, tool-call
arguments, finish-reason tables, JSON objects and the "not supported" error."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..model import FinishReason, ToolCall

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,")

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


def arguments_object(call: ToolCall, where: str) -> dict[str, Any]:
    """A tool call's arguments as a JSON object (the form most providers want)."""
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


def finish_reason(table: Mapping[str, str], reason: str | None, has_calls: bool) -> FinishReason:
    """A provider's stop reason in OpenAI's words; a plain stop that called tools is
    ``tool_calls``."""
    mapped = table.get(reason, "stop") if reason else "stop"
    return "tool_calls" if has_calls and mapped == "stop" else mapped


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
