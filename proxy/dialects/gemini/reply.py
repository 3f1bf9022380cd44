"""Gemini's ``GenerateContentResponse`` (a whole reply, or one stream event) as the model.

Only the fields read are declared. A function call gets a generated id when Gemini gives
none; a ``thoughtSignature`` rides inside that id (``<id>__thought__<signature>``) so the
client hands it back with the call on the next turn.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ...errors import UpstreamError
from ...model import (
    ChatReply,
    Choice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    new_id,
    tool_call_id,
    usage,
)
from ..common import finish_reason
from .request import SIGNATURE_MARK

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


class GeminiFunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class GeminiPart(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    function_call: GeminiFunctionCall | None = None
    thought_signature: str | None = None


class GeminiContent(msgspec.Struct):
    parts: list[GeminiPart] = []


class Candidate(msgspec.Struct, rename="camel"):
    content: GeminiContent | None = None
    finish_reason: str | None = None
    index: int = 0

    def part_list(self) -> list[GeminiPart]:
        return self.content.parts if self.content is not None else []


class UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class GenerateContentResponse(msgspec.Struct, rename="camel"):
    candidates: list[Candidate] = []
    usage_metadata: UsageMetadata | None = None
    prompt_feedback: PromptFeedback | None = None
    response_id: str | None = None
    # A stream reports a failure after its first event as an event holding an error.
    error: dict[str, Any] | None = None

    @property
    def blocked(self) -> bool:
        """The prompt itself was refused: no candidates, a ``blockReason`` instead."""
        feedback = self.prompt_feedback
        return not self.candidates and feedback is not None and bool(feedback.block_reason)


RESPONSE_DECODER = msgspec.json.Decoder(GenerateContentResponse)


def reply_usage(meta: UsageMetadata | None) -> Usage | None:
    """``usageMetadata`` in OpenAI's meaning: the prompt includes cached and tool-use prompt
    tokens, the completion includes the thinking tokens."""
    if meta is None:
        return None
    return usage(
        meta.prompt_token_count + meta.tool_use_prompt_token_count,
        meta.candidates_token_count + meta.thoughts_token_count,
        cached=meta.cached_content_token_count,
        reasoning=meta.thoughts_token_count,
    )


def completion_id(response_id: str | None) -> str:
    return "chatcmpl-" + response_id if response_id else new_id()


def call_id(part: GeminiPart) -> str:
    """The id the client sees for ``part``'s function call, its signature inside."""
    call = part.function_call
    ident = (call.id if call is not None and call.id else None) or tool_call_id()
    if part.thought_signature:
        ident += SIGNATURE_MARK + part.thought_signature
    return ident


def call_arguments(call: GeminiFunctionCall) -> str:
    return orjson.dumps(call.args or {}).decode()


def finish(reason: str | None, has_calls: bool) -> str:
    return finish_reason(_FINISH, reason, has_calls)


def decode_reply(raw: bytes, model: str) -> ChatReply:
    """A whole ``generateContent`` reply as a ``ChatReply`` (first candidate only)."""
    try:
        decoded = RESPONSE_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamError("the upstream sent a reply that is not Gemini's JSON") from exc
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    reason = "content_filter" if decoded.blocked else "stop"
    if decoded.candidates:
        candidate = decoded.candidates[0]
        for part in candidate.part_list():
            if part.function_call is not None:
                function = FunctionCall(
                    name=part.function_call.name, arguments=call_arguments(part.function_call)
                )
                calls.append(ToolCall(id=call_id(part), function=function))
            elif part.text is not None:
                (thoughts if part.thought else texts).append(part.text)
        reason = finish(candidate.finish_reason, bool(calls))
    text = "".join(texts)
    message = Message(
        role="assistant",
        # No content at all for a reply that only calls tools or was filtered.
        content=text or (None if calls or reason == "content_filter" else ""),
        tool_calls=calls or None,
        reasoning_content="".join(thoughts) or None,
    )
    return ChatReply(
        id=completion_id(decoded.response_id),
        model=model,
        choices=[Choice(message=message, finish_reason=reason)],
        usage=reply_usage(decoded.usage_metadata),
    )
