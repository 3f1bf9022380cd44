"""OpenAI ``chat.completion.chunk`` streams, both ways: chunks → events, events → chunks."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ...errors import TollwayError
from ...model import (
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from ..base import Frame
from .reply import tool_call_json, usage_json

DONE = b"[DONE]"


# -- chunks in ------------------------------------------------------------------------------
class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_ChunkChoice] = []
    usage: Usage | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)


class ChunkDecoder:
    """OpenAI chunk SSE frames in, common events out (unreadable events are skipped)."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = False

    def feed(self, frame: Frame) -> list[StreamEvent]:
        data = frame.data
        if not data or data == DONE:
            return []
        try:
            chunk = _chunk_decoder.decode(data)
        except msgspec.DecodeError:
            return []
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(Start(id=chunk.id, model=chunk.model, created=chunk.created))
        for choice in chunk.choices:
            delta = choice.delta
            if delta is not None:
                if delta.reasoning_content:
                    events.append(ReasoningDelta(delta.reasoning_content, choice.index))
                if delta.content:
                    events.append(TextDelta(delta.content, choice.index))
                for call in delta.tool_calls or ():
                    function = call.function
                    events.append(
                        ToolCallDelta(
                            index=call.index,
                            id=call.id,
                            name=function.name if function else None,
                            arguments=(function.arguments or "") if function else "",
                            choice=choice.index,
                        )
                    )
            if choice.finish_reason:
                events.append(Finish(choice.finish_reason, choice.index))
        if chunk.usage is not None:
            events.append(UsageReport(chunk.usage))
        return events

    def finish(self) -> list[StreamEvent]:
        return []


# -- events out -----------------------------------------------------------------------------
class ChunkEncoder:
    """Common events in, OpenAI ``chat.completion.chunk`` SSE events out.

    The usage chunk is written only when the client asked for it (``include_usage``), once,
    by ``finish`` (after the finish chunk, before ``[DONE]``) with the latest usage reported:
    some upstreams report usage more than once as it grows. The ledger reads usage from the
    events whatever the client sees.
    """

    __slots__ = ("_prefix", "_usage", "include_usage")

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._prefix: bytes | None = None
        self._usage: Usage | None = None

    def _event(self, rest: dict[str, Any]) -> bytes:
        prefix = self._prefix
        if prefix is None:
            prefix = self._head(Start(id="chatcmpl-", model=""))
        return b"data: " + prefix + orjson.dumps(rest)[1:] + b"\n\n"

    def _head(self, start: Start) -> bytes:
        head = {
            "id": start.id,
            "object": "chat.completion.chunk",
            "created": start.created,
            "model": start.model,
        }
        # Every chunk shares its head; only "choices" (and "usage") change.
        self._prefix = orjson.dumps(head)[:-1] + b","
        return self._prefix

    def _delta(self, delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._event({"choices": [choice]})

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._delta({"content": event.text}, index=event.choice)
        if isinstance(event, ToolCallDelta):
            if event.id is not None or event.name is not None:
                call = {
                    "index": event.index,
                    **tool_call_json(event.id or "", event.name or "", event.arguments),
                }
            else:
                call = {"index": event.index, "function": {"arguments": event.arguments}}
            return self._delta({"tool_calls": [call]}, index=event.choice)
        if isinstance(event, ReasoningDelta):
            return self._delta({"reasoning_content": event.text}, index=event.choice)
        if isinstance(event, Finish):
            return self._delta({}, event.reason, index=event.choice)
        if isinstance(event, UsageReport):
            self._usage = event.usage
            return b""
        self._head(event)
        return self._delta({"role": "assistant", "content": ""})

    def finish(self) -> bytes:
        """``[DONE]``, after the usage chunk when the client asked for usage (a zero one when
        the upstream reported none: the client's SDK waits for one)."""
        if self.include_usage:
            usage = usage_json(self._usage or Usage())
            return self._event({"choices": [], "usage": usage}) + b"data: [DONE]\n\n"
        return b"data: [DONE]\n\n"

    def error(self, exc: TollwayError) -> bytes:
        return b"data: " + exc.body() + b"\n\n"
