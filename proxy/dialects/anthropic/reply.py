"""An Anthropic ``message`` body as a ``ChatReply``.

Text blocks → the message text, ``tool_use`` → ``tool_calls`` (arguments a JSON string),
``thinking`` → ``reasoning_content``; stop reasons ``end_turn``/``stop_sequence`` → stop,
``max_tokens`` → length, ``tool_use`` → tool_calls. Usage in OpenAI's meaning: prompt = input
+ cache read + cache creation, cached = cache read.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import UpstreamUnreachable
from ...model import ChatReply, Choice, FinishReason, FunctionCall, Message, ToolCall, Usage, usage
from .request import JSON_TOOL

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, called: bool) -> FinishReason:
    """Anthropic's ``stop_reason`` as OpenAI's ``finish_reason`` (``tool_use`` without a
    call the client sees, the JSON-mode tool's, is a plain stop)."""
    finish = FINISH_REASONS.get(stop_reason or "", "stop")
    return "stop" if finish == "tool_calls" and not called else finish


def message_usage(raw: Any) -> Usage | None:
    """An Anthropic ``usage`` object in OpenAI's meaning; None when there is none."""
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached
    prompt += int(raw.get("cache_creation_input_tokens") or 0)
    return usage(prompt, int(raw.get("output_tokens") or 0), cached=cached)


def decode_message(body: bytes, model: str, json_tool: bool) -> ChatReply:
    """A ``message`` body as a ``ChatReply``; ``model`` names it when the body does not.

    With ``json_tool`` the ``JSON_TOOL`` call's input is the message text, not a tool call.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamUnreachable("the upstream sent a reply that is not JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamUnreachable("the upstream sent a reply that is not a JSON object")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in payload.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool and block.get("name") == JSON_TOOL:
                texts.append(arguments)
            else:
                function = FunctionCall(name=str(block.get("name") or ""), arguments=arguments)
                calls.append(ToolCall(id=str(block.get("id") or ""), function=function))
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content="".join(thinking) or None,
    )
    return ChatReply(
        id="chatcmpl-" + str(payload.get("id") or ""),
        model=str(payload.get("model") or model),
        choices=[
            Choice(
                message=message,
                finish_reason=finish_reason(payload.get("stop_reason"), bool(calls)),
            )
        ],
        usage=message_usage(payload.get("usage")),
    )
