"""Common stream events as the Responses SSE events (``response.created`` …
``response.output_text.delta`` … ``response.completed``).

Only choice 0 is relayed (a ``response`` has one output). Reasoning deltas have no event:
the response carries no reasoning item.
"""

from __future__ import annotations

from typing import Any

from ...errors import TollwayError
from ...model import (
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from ..inbound import sse_event
from .shell import INCOMPLETE, ResponseShell, call_item, item_id, message_item, output_text


class _OpenCall:
    __slots__ = ("arguments", "item", "output_index")

    def __init__(self, item: dict[str, Any], output_index: int) -> None:
        self.item = item
        self.output_index = output_index
        self.arguments: list[str] = []


class ResponseEvents:
    """Stream events in, Responses SSE events out, for one response (an ``EventEncoder``)."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any] | None] = []
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None
        self._started = False
        self._message: dict[str, Any] | None = None
        self._message_index = 0
        self._text: list[str] = []
        self._calls: dict[int, _OpenCall] = {}

    def encode(self, event: StreamEvent) -> bytes:
        # ``response.created`` opens the stream whatever event comes first (normally Start).
        out = self._start()
        if isinstance(event, TextDelta):
            if event.choice == 0 and event.text:
                out += self._text_delta(event.text)
        elif isinstance(event, ToolCallDelta):
            if event.choice == 0:
                out += self._call_delta(event)
        elif isinstance(event, Finish):
            if event.choice == 0:
                self.finish_reason = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        return out

    def finish(self) -> bytes:
        """Close the open items, then ``response.completed`` (or ``response.incomplete``
        when the output was cut), with the usage and the whole output."""
        out = self._start() + self._close_message() + self._close_calls()
        output = [item for item in self.output if item is not None]
        incomplete = INCOMPLETE.get(self.finish_reason or "")
        if incomplete:
            response = self.shell.render("incomplete", output, self.usage, incomplete=incomplete)
            return out + self._event("response.incomplete", {"response": response})
        response = self.shell.render("completed", output, self.usage)
        return out + self._event("response.completed", {"response": response})

    def error(self, exc: TollwayError) -> bytes:
        """``error`` then ``response.failed`` (with the output so far)."""
        code = exc.code or str(exc.status)
        output = [item for item in self.output if item is not None]
        failure = {"code": code, "message": exc.message}
        response = self.shell.render("failed", output, self.usage, error=failure)
        return (
            self._start()
            + self._event("error", {"code": code, "message": exc.message, "param": None})
            + self._event("response.failed", {"response": response})
        )

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse_event(kind, payload)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self.shell.render("in_progress", [], None)
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _text_delta(self, text: str) -> bytes:
        out = b""
        message = self._message
        if message is None:
            message = self._message = message_item(item_id("msg"), "in_progress", [])
            self._message_index = len(self.output)
            self._text = []
            self.output.append(None)
            out += self._event(
                "response.output_item.added",
                {"output_index": self._message_index, "item": message},
            )
            out += self._event(
                "response.content_part.added",
                {
                    "item_id": message["id"],
                    "output_index": self._message_index,
                    "content_index": 0,
                    "part": output_text(""),
                },
            )
        self._text.append(text)
        return out + self._event(
            "response.output_text.delta",
            {
                "item_id": message["id"],
                "output_index": self._message_index,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            },
        )

    def _close_message(self) -> bytes:
        message = self._message
        if message is None:
            return b""
        self._message = None
        text = "".join(self._text)
        where = {"item_id": message["id"], "output_index": self._message_index, "content_index": 0}
        part = output_text(text)
        done = message_item(message["id"], "completed", [part])
        self.output[self._message_index] = done
        return (
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self._event("response.content_part.done", {**where, "part": part})
            + self._event(
                "response.output_item.done", {"output_index": self._message_index, "item": done}
            )
        )

    def _call_delta(self, delta: ToolCallDelta) -> bytes:
        out = b""
        open_call = self._calls.get(delta.index)
        if open_call is None:
            # A call closes the message before it: the items are emitted in order.
            out += self._close_message()
            item = call_item(item_id("fc"), delta.id or "", delta.name or "")
            open_call = self._calls[delta.index] = _OpenCall(item, len(self.output))
            self.output.append(None)
            out += self._event(
                "response.output_item.added",
                {"output_index": open_call.output_index, "item": item},
            )
        if delta.arguments:
            open_call.arguments.append(delta.arguments)
            out += self._event(
                "response.function_call_arguments.delta",
                {
                    "item_id": open_call.item["id"],
                    "output_index": open_call.output_index,
                    "delta": delta.arguments,
                },
            )
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for open_call in self._calls.values():
            arguments = "".join(open_call.arguments)
            item = {**open_call.item, "arguments": arguments, "status": "completed"}
            self.output[open_call.output_index] = item
            out += self._event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": open_call.output_index,
                    "name": item["name"],
                    "arguments": arguments,
                },
            )
            out += self._event(
                "response.output_item.done", {"output_index": open_call.output_index, "item": item}
            )
        self._calls.clear()
        return out
