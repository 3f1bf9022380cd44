"""Converse payloads shared by the ``bedrock`` dialect tests and the engine tests: a canned
reply and a ConverseStream that streams text then a tool call."""

from __future__ import annotations

from typing import Any

from tests.providers.harness_bedrock import event

CONVERSE_REPLY: dict[str, Any] = {
    "output": {"message": {"role": "assistant", "content": [{"text": "pong"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 8,
        "outputTokens": 5,
        "totalTokens": 15,
        "cacheReadInputTokens": 2,
        "cacheWriteInputTokens": 0,
    },
}


def tool_stream() -> list[bytes]:
    """Event-stream messages: text, then a tool call whose input arrives in two deltas."""
    start = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}
    return [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hm"}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": start}),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": '}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": CONVERSE_REPLY["usage"], "metrics": {"latencyMs": 1}}),
    ]
