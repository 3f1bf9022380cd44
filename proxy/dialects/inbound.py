"""What the inbound faces share (a client talks to the gateway in a dialect's format).

Requests in: the body as a JSON object, the field checks that name the bad field in the
client's own words (``where``: ``messages[1].content[0]`` …), JSON mode, and the usage a
stream always asks for. Replies out: tool-call arguments as an object, the reply id without
the ``chatcmpl-`` the outbound faces put before it, finish-reason tables, the
``{"message": ...}`` error body, SSE events, and the bases of the stream encoders:

    StreamEncoder           done flag, usage, dispatch of common events by kind
    └── NumberedBlocks      + the open block and each tool call's block (Messages, Converse)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from ..errors import InvalidRequest, TollwayError
from ..model import (
    ChatRequest,
    Finish,
    FinishReason,
    ReasoningDelta,
    ResponseFormat,
    Start,
    StreamEvent,
    StreamOptions,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from .common import arguments_value


# -- requests in ----------------------------------------------------------------------------
def check_body(body: bytes) -> None:
    """Refuse an empty body before it reaches a JSON decoder."""
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")


def json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; raises ``InvalidRequest`` when it is not one."""
    check_body(body)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return payload


def object_at(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{where}` must be an object", param=where)
    return value


def optional_object(value: Any, where: str) -> dict[str, Any]:
    """An object that may be left out (``{}`` then)."""
    return {} if value is None else object_at(value, where)


def non_empty_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"`{where}` must be a non-empty string", param=where)
    return value


def string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest(f"`{where}` must be a list of strings", param=where)
    return list(value)


def optional_number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"`{where}` must be a number", param=where)
    return float(value)


def optional_integer(value: Any, where: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
    ):
        bound = f" of at least {minimum}" if minimum is not None else ""
        raise InvalidRequest(f"`{where}` must be an integer{bound}", param=where)
    return value


def positive_integer(value: Any, where: str) -> int | None:
    """An output limit (``max_tokens`` …) that may be left out."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"`{where}` must be a positive integer", param=where)
    return value


def json_mode(schema: Any) -> ResponseFormat:
    """JSON mode: held to ``schema`` when the client gave one (an object), else any JSON."""
    if isinstance(schema, dict):
        return ResponseFormat(
            type="json_schema", json_schema={"name": "response", "schema": schema}
        )
    return ResponseFormat(type="json_object")


def stream_with_usage(request: ChatRequest) -> None:
    """Mark ``request`` streamed, always asking for usage: the format's last event carries
    it (whether the client wants it or not), and the ledger needs it."""
    request.stream = True
    request.stream_options = StreamOptions(include_usage=True)


# -- replies out ----------------------------------------------------------------------------
def reply_arguments(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the JSON object a reply carries; arguments that are not a
    JSON object become ``{}`` rather than failing a reply the model already produced."""
    try:
        value = arguments_value(call.function.arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def bare_id(reply_id: str) -> str:
    """The upstream's own id in a reply id (the outbound faces put ``chatcmpl-`` before it)."""
    return reply_id.removeprefix("chatcmpl-")


def finish_words(*, stop: str, length: str, tool_calls: str, content_filter: str) -> dict[str, str]:
    """A format's words for the common finish reasons (``function_call``, the deprecated
    spelling, is a tool call); read it with ``finish_word``."""
    return {
        "stop": stop,
        "length": length,
        "tool_calls": tool_calls,
        "function_call": tool_calls,
        "content_filter": content_filter,
    }


def finish_word(words: dict[str, str], reason: str | None) -> str:
    """``reason`` in a format's words; no reason (or an unknown one) is a plain stop."""
    return words.get(reason or "stop", words["stop"])


def message_error(exc: TollwayError) -> bytes:
    """The ``{"message": ...}`` error body (Cohere's, Bedrock's: the status says the rest)."""
    return orjson.dumps({"message": exc.message})


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One named SSE event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# The events that belong to one choice of the reply.
ChoiceEvent = TextDelta | ReasoningDelta | ToolCallDelta | Finish


class StreamEncoder(ABC):
    """What every inbound stream encoder (an ``EventEncoder``) does alike: common events
    dispatched by kind (empty text and reasoning deltas dropped), the latest usage kept for
    the trailer (upstreams may report it more than once as it grows), and nothing more once
    the stream is finished. Subclasses say what each kind of event becomes."""

    __slots__ = ("_done", "_usage")

    def __init__(self) -> None:
        self._done = False
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        out = self._opening(event)
        if isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, Start) or not self._relays(event):
            pass
        elif isinstance(event, TextDelta):
            if event.text:
                out += self._text(event.text)
        elif isinstance(event, ReasoningDelta):
            if event.text:
                out += self._reasoning(event.text)
        elif isinstance(event, ToolCallDelta):
            out += self._tool_call(event)
        elif isinstance(event, Finish):
            out += self._finish(event.reason)
        return out

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self._trailer()

    @abstractmethod
    def error(self, exc: TollwayError) -> bytes: ...

    def _opening(self, event: StreamEvent) -> bytes:
        """What goes out before ``event`` (the stream's opening, once); the ``Start`` event
        has no other use."""
        return b""

    def _relays(self, event: ChoiceEvent) -> bool:
        """Whether ``event`` has a place in the client's stream."""
        return True

    @abstractmethod
    def _text(self, text: str) -> bytes: ...

    @abstractmethod
    def _reasoning(self, text: str) -> bytes: ...

    @abstractmethod
    def _tool_call(self, delta: ToolCallDelta) -> bytes: ...

    @abstractmethod
    def _finish(self, reason: FinishReason) -> bytes: ...

    @abstractmethod
    def _trailer(self) -> bytes:
        """The stream's last events, written once by ``finish``."""


class NumberedBlocks(StreamEncoder):
    """A stream encoder for a format that numbers its content blocks in order (Anthropic's
    Messages, Bedrock's ConverseStream): one block is open at a time, a new kind of delta
    (text, reasoning, another tool call) closes it and opens the next, and a tool call's
    later argument deltas go to the block it opened. Subclasses write the block events.
    """

    __slots__ = ("_index", "_open", "_tools")

    def __init__(self) -> None:
        super().__init__()
        self._index = -1
        # The open block: a kind of text ("text", "thinking" …) or a tool call's index.
        self._open: str | int | None = None
        # tool call index → its block's index
        self._tools: dict[int, int] = {}

    @abstractmethod
    def _block_start(self, kind: str, call: ToolCallDelta | None) -> bytes:
        """The event that starts block ``self._index``: a tool call's when ``call`` is
        given, else one of ``kind`` (``b""`` where the format sends none)."""

    @abstractmethod
    def _block_stop(self) -> bytes:
        """The event that ends block ``self._index``."""

    def _open_block(self, kind: str) -> bytes:
        """Make ``kind`` the open block (nothing to say when it is already)."""
        if self._open == kind:
            return b""
        return self._next_block(kind, kind, None)

    def _open_tool(self, call: ToolCallDelta) -> tuple[bytes, int]:
        """The events that open ``call``'s block on its first delta, and that block's index."""
        opened = b""
        if call.index not in self._tools:
            opened = self._next_block(call.index, "tool", call)
            self._tools[call.index] = self._index
        return opened, self._tools[call.index]

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return self._block_stop()

    def _next_block(self, opened: str | int, kind: str, call: ToolCallDelta | None) -> bytes:
        closed = self._close()
        self._index += 1
        self._open = opened
        return closed + self._block_start(kind, call)
