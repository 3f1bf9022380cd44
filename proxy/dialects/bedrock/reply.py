"""Converse replies as ``ChatReply``: text, reasoning, tool calls, stop reason and usage.

The forced JSON-mode tool's input (see ``request.JSON_TOOL``) is the answer's text, and its
``tool_use`` stop is a plain ``stop``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import UpstreamError
from ...model import (
    ChatReply,
    Choice,
    FinishReason,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    new_id,
    usage,
)
from ..common import loads_object

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def usage_of(raw: Any) -> Usage | None:
    """OpenAI usage from Converse's; cache reads and writes are counted in the prompt."""
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    prompt = int(raw.get("inputTokens") or 0) + cached + written
    return usage(prompt, int(raw.get("outputTokens") or 0), cached=cached)


def finish_reason(stop_reason: Any, json_tool: str | None, called: bool) -> FinishReason:
    """Converse's ``stopReason`` in OpenAI's words; the JSON tool's ``tool_use`` is ``stop``."""
    finish = FINISH_REASONS.get(str(stop_reason), "stop")
    if finish == "tool_calls" and json_tool is not None and not called:
        return "stop"
    return finish


def decode_converse(body: bytes, model: str, json_tool: str | None) -> ChatReply:
    """A ``Converse`` reply body → ``ChatReply``."""
    reply = loads_object(body)
    if reply is None:
        raise UpstreamError("Bedrock answered with a body that is not a JSON object")
    return from_converse(reply, json_tool, model)


def from_converse(reply: dict[str, Any], json_tool: str | None, model: str) -> ChatReply:
    """The ``ChatReply`` for a Converse reply body (already parsed to a JSON object)."""
    output = reply.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
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
                calls.append(
                    ToolCall(
                        id=str(tool_use.get("toolUseId", "")),
                        function=FunctionCall(
                            name=str(tool_use.get("name", "")), arguments=arguments
                        ),
                    )
                )
        elif isinstance(thought := block.get("reasoningContent"), dict):
            text = (thought.get("reasoningText") or {}).get("text")
            if text:
                reasoning.append(str(text))
    text = "".join(texts)
    answer = Message(
        role="assistant",
        content=text if text or not calls else None,
        tool_calls=calls or None,
        reasoning_content="".join(reasoning) or None,
    )
    finish = finish_reason(reply.get("stopReason"), json_tool, bool(calls))
    return ChatReply(
        id=new_id(),
        model=model,
        choices=[Choice(message=answer, finish_reason=finish)],
        usage=usage_of(reply.get("usage")),
    )
