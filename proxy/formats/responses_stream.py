"""A chat completion's chunks as the Responses SSE events (``response.created`` …
``response.output_text.delta`` … ``response.completed``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import orjson

from ..errors import TollwayError
from ..usage import Usage
from .responses_reply import (
    INCOMPLETE,
    ResponseShell,
    call_item,
    item_id,
    message_item,
    output_text,
)
from .translate import SSEParser


class _OpenCall:
    __slots__ = ("arguments", "item", "output_index")

    def __init__(self, item: dict[str, Any], output_index: int) -> None:
        self.item = item
        self.output_index = output_index
        self.arguments: list[str] = []


class ResponseEvents:
    """``chat.completion.chunk`` SSE in, Responses SSE events out, for one response."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any] | None] = []
        self.usage: Usage | None = None
        self.finish: str | None = None
        self._message: dict[str, Any] | None = None
        self._message_index = 0
        self._text: list[str] = []
        self._calls: dict[int, _OpenCall] = {}

    def event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        parser = SSEParser()
        yield self.start()
        try:
            async for data in chunks:
                out = []
                for sse in parser.feed(data):
                    if sse.data == b"[DONE]" or not sse.data:
                        continue
                    try:
                        chunk = orjson.loads(sse.data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                        error = chunk["error"]
                        out.append(self.failed(str(error.get("message", "")), error.get("code")))
                        yield b"".join(out)
                        return
                    if isinstance(chunk, dict):
                        out.append(self.chunk(chunk))
                if out:
                    yield b"".join(out)
        except TollwayError as exc:
            yield self.failed(exc.message, exc.code or str(exc.status))
            raise
        yield self.complete()

    def start(self) -> bytes:
        response = self.shell.render("in_progress", [], None)
        return self.event("response.created", {"response": response}) + self.event(
            "response.in_progress", {"response": response}
        )

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            try:
                self.usage = msgspec.convert(usage, Usage)
            except msgspec.ValidationError:
                self.usage = None
        out = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                out.append(self._text_delta(str(text)))
            for call in delta.get("tool_calls") or ():
                out.append(self._call_delta(call))
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        return b"".join(out)

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._message is None:
            self._message = message_item(item_id("msg"), "in_progress", [])
            self._message_index = len(self.output)
            self._text = []
            self.output.append(None)
            out += self.event(
                "response.output_item.added",
                {"output_index": self._message_index, "item": self._message},
            )
            out += self.event(
                "response.content_part.added",
                {
                    "item_id": self._message["id"],
                    "output_index": self._message_index,
                    "content_index": 0,
                    "part": output_text(""),
                },
            )
        self._text.append(text)
        return out + self.event(
            "response.output_text.delta",
            {
                "item_id": self._message["id"],
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
            self.event("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self.event("response.content_part.done", {**where, "part": part})
            + self.event(
                "response.output_item.done", {"output_index": self._message_index, "item": done}
            )
        )

    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        open_call = self._calls.get(position)
        if open_call is None:
            out += self._close_message()
            item = call_item(
                item_id("fc"), str(call.get("id") or ""), str(function.get("name") or "")
            )
            open_call = self._calls[position] = _OpenCall(item, len(self.output))
            self.output.append(None)
            out += self.event(
                "response.output_item.added",
                {"output_index": open_call.output_index, "item": item},
            )
        piece = function.get("arguments")
        if piece:
            open_call.arguments.append(str(piece))
            out += self.event(
                "response.function_call_arguments.delta",
                {
                    "item_id": open_call.item["id"],
                    "output_index": open_call.output_index,
                    "delta": str(piece),
                },
            )
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for open_call in self._calls.values():
            arguments = "".join(open_call.arguments)
            item = {**open_call.item, "arguments": arguments, "status": "completed"}
            self.output[open_call.output_index] = item
            out += self.event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": open_call.output_index,
                    "name": item["name"],
                    "arguments": arguments,
                },
            )
            out += self.event(
                "response.output_item.done", {"output_index": open_call.output_index, "item": item}
            )
        self._calls.clear()
        return out

    def complete(self) -> bytes:
        out = self._close_message() + self._close_calls()
        output = [item for item in self.output if item is not None]
        incomplete = INCOMPLETE.get(self.finish or "")
        if incomplete:
            response = self.shell.render("incomplete", output, self.usage, incomplete=incomplete)
            return out + self.event("response.incomplete", {"response": response})
        response = self.shell.render("completed", output, self.usage)
        return out + self.event("response.completed", {"response": response})

    def failed(self, message: str, code: Any) -> bytes:
        code_text = str(code) if code is not None else None
        output = [item for item in self.output if item is not None]
        error = {"code": code_text or "server_error", "message": message}
        response = self.shell.render("failed", output, self.usage, error=error)
        return self.event(
            "error", {"code": code_text, "message": message, "param": None}
        ) + self.event("response.failed", {"response": response})
