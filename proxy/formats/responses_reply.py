"""A chat completion as a Responses ``response`` object (``to_response``).

``ResponseShell`` holds the fields every ``response`` object of one request repeats; the
item builders here are shared with the streamed events (``responses_stream``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import orjson

from ..errors import TollwayError
from ..usage import Usage
from .responses_request import ResponsesRequest


class ResponseShell:
    """The fields every ``response`` object of one request repeats."""

    __slots__ = ("created_at", "id", "model", "request")

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self.id = "resp_" + uuid.uuid4().hex
        self.created_at = int(time.time())
        # The name the client asked for, the same in every event of the response.
        self.model = request.model

    def render(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None,
        *,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = self.request
        text_format: dict[str, Any] = {"type": "text"}
        if request.text is not None and request.text.format is not None:
            text_format = msgspec.to_builtins(request.text.format)
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "metadata": request.metadata or {},
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {
                "effort": request.reasoning.effort if request.reasoning else None,
                "summary": None,
            },
            "store": False,
            "temperature": request.temperature,
            "text": {"format": text_format},
            "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
            "tools": request.tools or [],
            "top_p": request.top_p,
            "truncation": "disabled",
            "usage": usage_json(usage),
            "user": request.user,
        }


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def to_response(shell: ResponseShell, body: bytes, usage: Usage | None) -> bytes:
    """A ``response`` object from a ``chat.completion`` body."""
    try:
        completion = orjson.loads(body)
        choice = completion["choices"][0]
        message = choice.get("message") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TollwayError("the upstream's chat completion could not be read") from exc
    output: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append(output_text(str(message["content"])))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": str(message["refusal"])})
    if content:
        output.append(message_item(item_id("msg"), "completed", content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        item = call_item(item_id("fc"), str(call.get("id", "")), str(function.get("name", "")))
        item["arguments"] = str(function.get("arguments") or "")
        item["status"] = "completed"
        output.append(item)
    incomplete = INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if incomplete else "completed"
    return orjson.dumps(shell.render(status, output, usage, incomplete=incomplete))


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(ident: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(ident: str, call_id: str, name: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "function_call",
        "status": "in_progress",
        "call_id": call_id,
        "name": name,
        "arguments": "",
    }
