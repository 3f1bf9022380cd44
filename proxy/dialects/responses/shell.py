"""The fields every ``response`` object of one request repeats, and the item builders shared
by the whole reply (``reply``) and the streamed events (``stream``).

A Responses ``response`` echoes the request (its instructions, tools, text format, metadata
…). Some of those never reach the common ``ChatRequest`` (``metadata`` is not sent upstream;
``text.format`` and ``tools`` are echoed as the client wrote them), so ``decode_request``
returns a ``ResponsesChatRequest``: a ``ChatRequest`` that also carries the exact ``Echo``
outside its msgspec fields, where no outbound dialect encodes it. ``shell_for`` reads it back,
and rebuilds what it can from a plain ``ChatRequest`` when the pipeline passes another one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from ...model import ChatRequest, FunctionSpec, Usage


class Echo(msgspec.Struct, frozen=True, kw_only=True):
    """The request's fields as a ``response`` object repeats them."""

    model: str  # the name the client asked for, the same in every event of the response
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    temperature: float | None = None
    text_format: dict[str, Any] | None = None  # None echoes {"type": "text"}
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_p: float | None = None
    user: str | None = None


class ResponsesChatRequest(ChatRequest, kw_only=True, omit_defaults=True, dict=True):
    """A ``ChatRequest`` decoded from a Responses body, carrying that body's ``Echo``.

    The echo lives in the instance ``__dict__``, not in a msgspec field, so encoding the
    request (for any provider) never sends it; a copy (``msgspec.structs.replace``) drops it
    and ``shell_for`` falls back to what the ``ChatRequest`` itself says.
    """

    def attach(self, echo: Echo) -> None:
        self.__dict__["_echo"] = echo

    def echo(self) -> Echo | None:
        echo = self.__dict__.get("_echo")
        return echo if isinstance(echo, Echo) else None


class ResponseShell:
    """One response's id, creation time and echoed request fields."""

    __slots__ = ("created_at", "echo", "id")

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.id = "resp_" + uuid.uuid4().hex
        self.created_at = int(time.time())

    def render(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None,
        *,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        echo = self.echo
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": echo.instructions,
            "max_output_tokens": echo.max_output_tokens,
            "metadata": echo.metadata or {},
            "model": echo.model,
            "output": output,
            "parallel_tool_calls": echo.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {"effort": echo.reasoning_effort, "summary": None},
            "store": False,
            "temperature": echo.temperature,
            "text": {"format": echo.text_format or {"type": "text"}},
            "tool_choice": echo.tool_choice if echo.tool_choice is not None else "auto",
            "tools": echo.tools or [],
            "top_p": echo.top_p,
            "truncation": "disabled",
            "usage": usage_json(usage),
            "user": echo.user,
        }


def shell_for(request: ChatRequest) -> ResponseShell:
    """The shell of a response to ``request``: the exact echo when ``request`` came from
    ``decode_request``, else the echo rebuilt from the ``ChatRequest``'s own fields."""
    if isinstance(request, ResponsesChatRequest):
        echo = request.echo()
        if echo is not None:
            return ResponseShell(echo)
    return ResponseShell(echo_of_chat(request))


def echo_of_chat(request: ChatRequest) -> Echo:
    """What a ``response`` can echo of a plain ``ChatRequest`` (no metadata: it is the
    chat request's, not a Responses client's)."""
    first = request.messages[0] if request.messages else None
    instructions = (
        first.content
        if first is not None and first.role == "system" and isinstance(first.content, str)
        else None
    )
    tools = request.tool_list()
    return Echo(
        model=request.model,
        instructions=instructions,
        max_output_tokens=request.output_limit(),
        parallel_tool_calls=request.parallel_tool_calls,
        reasoning_effort=request.reasoning_effort,
        temperature=request.temperature,
        text_format=_text_format_of_chat(request),
        tool_choice=_tool_choice_of_chat(request.choice()),
        tools=[_tool_of_chat(tool.function) for tool in tools] or None,
        top_p=request.top_p,
        user=request.user,
    )


def _text_format_of_chat(request: ChatRequest) -> dict[str, Any] | None:
    response_format = request.response_format
    if response_format is None or response_format.type not in ("json_object", "json_schema"):
        return None
    schema = response_format.json_schema or {}
    return {
        "type": response_format.type,
        "name": schema.get("name"),
        "schema": schema.get("schema"),
        "description": schema.get("description"),
        "strict": schema.get("strict"),
    }


def _tool_choice_of_chat(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and function.get("name"):
            return {"type": "function", "name": function["name"]}
    return choice


def _tool_of_chat(function: FunctionSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": function.name}
    if function.description is not None:
        tool["description"] = function.description
    if function.parameters is not None:
        tool["parameters"] = function.parameters
    if function.strict is not None:
        tool["strict"] = function.strict
    return tool


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    """Usage in the Responses shape (OpenAI's meaning: input includes cached tokens)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


# A finish reason that cut the output short: the response is ``incomplete`` for this reason.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


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
