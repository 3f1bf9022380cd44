"""Cohere v2's reply and stream event shapes (only the fields read), decoded with msgspec,
and the translations both the whole-reply and the stream decoders share."""

from __future__ import annotations

from typing import Any

import msgspec

from ...model import Usage, new_id, usage

# Cohere's finish reasons in OpenAI's words; anything else is a plain stop.
FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
}


class Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class ToolCall(msgspec.Struct):
    id: str | None = None
    function: Function | None = None


class ContentBlock(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    thinking: str | None = None


class Message(msgspec.Struct):
    content: list[ContentBlock] | None = None
    tool_plan: str | None = None
    tool_calls: list[ToolCall] | None = None


class Tokens(msgspec.Struct):
    input_tokens: float | None = None
    output_tokens: float | None = None


class ReportedUsage(msgspec.Struct):
    billed_units: Tokens | None = None
    tokens: Tokens | None = None
    cached_tokens: float | None = None


class Response(msgspec.Struct):
    id: str | None = None
    finish_reason: str | None = None
    message: Message | None = None
    usage: ReportedUsage | None = None


class DeltaContent(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None


class DeltaMessage(msgspec.Struct):
    # message-start opens the message with empty lists; the deltas carry single objects.
    content: DeltaContent | list[Any] | None = None
    tool_plan: str | None = None
    tool_calls: ToolCall | list[Any] | None = None


class Delta(msgspec.Struct):
    message: DeltaMessage | None = None
    finish_reason: str | None = None
    usage: ReportedUsage | None = None
    error: str | None = None


class Event(msgspec.Struct):
    type: str = ""
    id: str | None = None
    index: int = 0
    delta: Delta | None = None


response_decoder = msgspec.json.Decoder(Response)
event_decoder = msgspec.json.Decoder(Event)


def reply_id(upstream_id: str | None) -> str:
    """The OpenAI-style id of a reply: Cohere's id behind ``chatcmpl-`` (fresh if absent)."""
    return "chatcmpl-" + upstream_id if upstream_id else new_id("chatcmpl-")


def reported_usage(reported: ReportedUsage | None) -> Usage | None:
    """What Cohere bills: ``billed_units`` when it holds counts (it leaves out the prompt
    template Cohere adds), else ``tokens``."""
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
