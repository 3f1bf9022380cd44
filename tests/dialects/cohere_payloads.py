"""Cohere v2 payloads shared by the ``cohere`` dialect tests and the engine tests: tools,
canned replies and the stream events ``/v2/chat`` sends."""

from __future__ import annotations

from typing import Any

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
USAGE = {
    "billed_units": {"input_tokens": 9, "output_tokens": 4},
    "tokens": {"input_tokens": 70, "output_tokens": 4},
}


def reply_payload(
    message: dict[str, Any], finish: str = "COMPLETE", **extra: Any
) -> dict[str, Any]:
    """A ``/v2/chat`` reply carrying ``message``."""
    return {
        "id": "5a50480a",
        "finish_reason": finish,
        "message": {"role": "assistant", **message},
        "usage": USAGE,
        **extra,
    }


# -- stream events -----------------------------------------------------------------------------
def content(text: str) -> dict[str, Any]:
    return {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}}


def end(finish: str) -> dict[str, Any]:
    return {"type": "message-end", "delta": {"finish_reason": finish, "usage": USAGE}}


OPENING = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
START = {"id": "m-1", "type": "message-start", "delta": {"message": OPENING}}
TEXT_EVENTS = (
    START,
    {"type": "content-start", "index": 0,
     "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    content("Hel"),
    content("lo"),
    {"type": "content-end", "index": 0},
    end("COMPLETE"),
)  # fmt: skip
