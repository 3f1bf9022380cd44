"""Cohere v2 chat reply → ``ChatReply``."""

from __future__ import annotations

import msgspec

from ...errors import UpstreamError
from ...model import ChatReply, Choice, FunctionCall, Message, ToolCall, tool_call_id
from ..common import finish_reason
from .wire import FINISH, Function, reply_id, reported_usage, response_decoder
from .wire import Message as CohereMessage


def translate_response(raw: bytes, model: str) -> ChatReply:
    """A whole Cohere chat reply as a ``ChatReply`` for ``model``, usage from what Cohere
    bills; raises ``UpstreamError`` when the body is not Cohere's JSON."""
    try:
        decoded = response_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamError("the upstream sent a reply that is not Cohere's JSON") from exc
    message = decoded.message or CohereMessage()
    blocks = message.content or []
    text = "".join(b.text for b in blocks if b.type == "text" and b.text)
    reasoning = "".join(b.thinking for b in blocks if b.type == "thinking" and b.thinking)
    calls: list[ToolCall] = []
    for call in message.tool_calls or ():
        function = call.function or Function()
        calls.append(
            ToolCall(
                id=call.id or tool_call_id(),
                function=FunctionCall(name=function.name, arguments=function.arguments or "{}"),
            )
        )
    # A reply that only calls tools says what it plans in ``tool_plan``: that is its text.
    if not text and calls and message.tool_plan:
        text = message.tool_plan
    reply_message = Message(
        role="assistant",
        content=text if text or not calls else None,
        tool_calls=calls or None,
        reasoning_content=reasoning or None,
    )
    reason = finish_reason(FINISH, decoded.finish_reason, bool(calls))
    return ChatReply(
        id=reply_id(decoded.id),
        model=model,
        choices=[Choice(message=reply_message, finish_reason=reason)],
        usage=reported_usage(decoded.usage),
    )
