"""A Responses ``response`` object (an upstream's reply) as a ``ChatReply``, and the pieces
the stream decoder shares: the wire structs, usage, finish reasons and in-band failures.

Output ``message`` items' ``output_text`` (and ``refusal``) → the content; ``function_call``
items → ``tool_calls``; ``reasoning`` items' summary text (and raw ``reasoning_text``, which
open-weight models send) → ``reasoning_content``, parts joined by blank lines. A response
``incomplete`` for ``max_output_tokens`` finishes ``length``, for ``content_filter``
``content_filter``. Usage is already in OpenAI's meaning.
"""

from __future__ import annotations

import msgspec

from ...errors import UpstreamStatusError, UpstreamUnreachable
from ...model import (
    ChatReply,
    Choice,
    FinishReason,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    usage,
)
from ..base import Fault
from ..common import relayed_error

REASONING_SEPARATOR = "\n\n"
_FINISH_OF_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
# Failure codes that are the client's or the quota's doing; any other is the upstream's.
_STATUS_OF_CODE = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "server_error": 500,
}


class WirePart(msgspec.Struct):
    type: str = ""
    text: str | None = None
    refusal: str | None = None


class WireItem(msgspec.Struct):
    type: str = ""
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    content: list[WirePart] | None = None
    summary: list[WirePart] | None = None


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class WireUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class WireIncomplete(msgspec.Struct):
    reason: str | None = None


class WireError(msgspec.Struct):
    code: str | None = None
    message: str | None = None
    param: str | None = None


class WireResponse(msgspec.Struct):
    id: str = ""
    model: str = ""
    created_at: int | float | None = None
    status: str | None = None
    incomplete_details: WireIncomplete | None = None
    output: list[WireItem] = []
    usage: WireUsage | None = None
    error: WireError | None = None


_response_decoder = msgspec.json.Decoder(WireResponse)


def decode_reply(body: bytes, model: str) -> ChatReply:
    """The ``ChatReply`` for a ``response`` body; a ``failed`` response raises as its
    stream's ``response.failed`` would."""
    try:
        response = _response_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamUnreachable(
            f"the upstream sent a reply that is not a Responses response: {exc}"
        ) from exc
    if response.status == "failed":
        raise failure(response.error)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for item in response.output:
        if item.type == "message":
            texts.extend(text for part in item.content or () if (text := message_text(part)))
        elif item.type == "function_call":
            function = FunctionCall(name=item.name or "", arguments=item.arguments or "")
            calls.append(ToolCall(id=item.call_id or "", function=function))
        elif item.type == "reasoning":
            reasoning.extend(part.text for part in item.summary or () if part.text)
            reasoning.extend(
                part.text
                for part in item.content or ()
                if part.type == "reasoning_text" and part.text
            )
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content=REASONING_SEPARATOR.join(reasoning) or None,
    )
    choice = Choice(message=message, finish_reason=finish_reason(response, bool(calls)))
    reply = ChatReply(
        id=reply_id(response.id),
        model=response.model or model,
        choices=[choice],
        usage=usage_of(response.usage),
    )
    if response.created_at:
        reply.created = int(response.created_at)
    return reply


def reply_id(response_id: str) -> str:
    return "chatcmpl-" + response_id


def message_text(part: WirePart) -> str:
    """The text of a message item's part: ``output_text``, or a ``refusal`` (which chat's
    common model has no field for, and which the client should still read)."""
    if part.type == "refusal":
        return part.refusal or ""
    return part.text or "" if part.type == "output_text" else ""


def finish_reason(response: WireResponse, called: bool) -> FinishReason:
    if response.status == "incomplete":
        details = response.incomplete_details
        reason = details.reason if details is not None else None
        return _FINISH_OF_INCOMPLETE.get(reason or "", "length")
    return "tool_calls" if called else "stop"


def usage_of(raw: WireUsage | None) -> Usage | None:
    if raw is None:
        return None
    cached = raw.input_tokens_details.cached_tokens if raw.input_tokens_details else None
    thought = raw.output_tokens_details.reasoning_tokens if raw.output_tokens_details else None
    return usage(raw.input_tokens, raw.output_tokens, cached=cached or 0, reasoning=thought or 0)


def failure(error: WireError | None) -> UpstreamStatusError:
    """The exception for a failed response's (or an ``error`` event's) error object, as if
    the upstream had answered with the status its code stands for: a rate limit stays a
    retryable 429, the client's own mistakes 400, anything else a retryable 502."""
    code = (error.code if error is not None else None) or ""
    message = (error.message if error is not None else None) or "the upstream response failed"
    return relayed_error(Fault(status=_status_of(code), message=message, code=code or None))


def _status_of(code: str) -> int:
    if code in _STATUS_OF_CODE:
        return _STATUS_OF_CODE[code]
    # Another gateway writes the HTTP status as the code when its error has none.
    if code.isdigit() and 400 <= int(code) < 600:
        return int(code)
    return 400 if code.startswith("invalid_") else 500
