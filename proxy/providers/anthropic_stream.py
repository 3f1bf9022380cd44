"""Anthropic's stream events: translated to OpenAI chunks, or relayed with usage read.

``ChatStream`` turns the Messages events of a translated chat call into
``chat.completion.chunk`` events (the JSON-mode tool's input becomes message text).
``NativeUsage`` reads usage from the events of a ``/v1/messages`` pass-through without
touching its bytes; ``native_body_usage`` does the same for a whole ``message`` body. Usage
is in OpenAI's meaning: prompt = input + cache read + cache creation, cached = cache read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import orjson

from ..errors import TollwayError, UpstreamStatusError, UpstreamUnreachable
from ..formats.translate import ChunkWriter, SSEEvent, SSEParser, translate_events, usage
from ..usage import Usage
from .anthropic_request import JSON_TOOL
from .base import Deployment
from .openai import scrub

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, called: bool) -> str:
    """Anthropic's ``stop_reason`` as OpenAI's ``finish_reason`` (``tool_use`` without a
    call the client sees, the JSON-mode tool's, is a plain stop)."""
    finish = FINISH_REASONS.get(stop_reason or "", "stop")
    return "stop" if finish == "tool_calls" and not called else finish


class ChatStream:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` events out."""

    def __init__(
        self, model: str, include_usage: bool, json_tool: bool, deployment: Deployment
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.json_tool = json_tool
        self.deployment = deployment
        self.writer: ChunkWriter | None = None
        self.counts = NativeUsage()
        # content block index → ("text"|"tool"|"json"|"thinking", OpenAI tool-call index)
        self.blocks: dict[int, tuple[str, int]] = {}
        self.tool_calls = 0
        self.finish = "stop"
        self.finished = False

    def final_usage(self) -> Usage | None:
        return self.counts.final()

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for out in translate_events(chunks, self.on):
            yield out
        if not self.finished:
            raise UpstreamUnreachable("the upstream stream ended before message_stop")

    def on(self, event: SSEEvent) -> bytes:
        if not event.data or self.finished:
            return b""
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return b""
        kind = data.get("type") or event.event
        self.counts.absorb(data)
        if kind == "message_start":
            message = data.get("message") or {}
            self.writer = ChunkWriter(
                "chatcmpl-" + str(message.get("id") or ""),
                str(message.get("model") or self.model),
                include_usage=self.include_usage,
            )
            return self.writer.role()
        if kind == "error":
            error = data.get("error") or {}
            raise _stream_error(error, self.deployment)
        writer = self.writer
        if writer is None:
            return b""
        if kind == "content_block_start":
            return self._block_start(writer, int(data.get("index") or 0), data)
        if kind == "content_block_delta":
            return self._block_delta(writer, int(data.get("index") or 0), data.get("delta") or {})
        if kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = finish_reason(reason, bool(self.tool_calls))
            return b""
        if kind == "message_stop":
            self.finished = True
            final = self.counts.final() or usage(0, 0)
            return writer.finish(self.finish) + writer.usage_chunk(final) + writer.done()
        return b""

    def _block_start(self, writer: ChunkWriter, index: int, data: dict[str, Any]) -> bytes:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            if self.json_tool and block.get("name") == JSON_TOOL:
                self.blocks[index] = ("json", 0)
                return b""
            position = self.tool_calls
            self.tool_calls += 1
            self.blocks[index] = ("tool", position)
            return writer.tool_call_start(
                position, str(block.get("id") or ""), str(block.get("name") or "")
            )
        if kind == "thinking":
            self.blocks[index] = ("thinking", 0)
            text = block.get("thinking") or ""
            return writer.reasoning(text) if text else b""
        self.blocks[index] = ("text", 0)
        text = block.get("text") or ""
        return writer.text(text) if text else b""

    def _block_delta(self, writer: ChunkWriter, index: int, delta: dict[str, Any]) -> bytes:
        kind, position = self.blocks.get(index, ("text", 0))
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            text = delta.get("text") or ""
            return writer.text(text) if text else b""
        if delta_type == "input_json_delta":
            piece = delta.get("partial_json") or ""
            if not piece:
                return b""
            if kind == "json":
                return writer.text(piece)
            return writer.tool_call_arguments(position, piece)
        if delta_type == "thinking_delta":
            text = delta.get("thinking") or ""
            return writer.reasoning(text) if text else b""
        return b""


# -- native pass-through usage --------------------------------------------------------------
class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(msgspec.Struct):
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    message: _Message | None = None
    usage: _Usage | None = None


_message_decoder = msgspec.json.Decoder(_Message)
_event_decoder = msgspec.json.Decoder(_Event)


def native_body_usage(raw: bytes) -> Usage | None:
    """The usage of an Anthropic ``message`` body in OpenAI's meaning."""
    try:
        reported = _message_decoder.decode(raw).usage
    except msgspec.DecodeError:
        return None
    counts = NativeUsage()
    if reported is None:
        return None
    counts.add(reported, final=True)
    return counts.final()


class NativeUsage:
    """Usage read from Anthropic stream events; final once ``message_delta`` was seen."""

    __slots__ = ("cache_creation", "cache_read", "complete", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_creation = 0
        self.complete = False

    def absorb(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            raw = (data.get("message") or {}).get("usage")
        elif kind == "message_delta":
            raw = data.get("usage")
        else:
            return
        if isinstance(raw, dict):
            self.add(msgspec.convert(raw, _Usage), final=kind == "message_delta")

    def add(self, reported: _Usage, *, final: bool) -> None:
        # message_delta's counts are cumulative; its input counts, when present, win.
        if reported.input_tokens:
            self.input = reported.input_tokens
        if reported.cache_read_input_tokens:
            self.cache_read = reported.cache_read_input_tokens
        if reported.cache_creation_input_tokens:
            self.cache_creation = reported.cache_creation_input_tokens
        if reported.output_tokens is not None:
            self.output = reported.output_tokens
        self.complete = self.complete or final

    def final(self) -> Usage | None:
        if not self.complete:
            return None
        prompt = self.input + self.cache_read + self.cache_creation
        return usage(prompt, self.output, cached=self.cache_read)

    async def relay(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass the upstream's bytes on untouched, reading usage from its events."""
        parser = SSEParser()
        async for chunk in chunks:
            for event in parser.feed(chunk):
                self._sniff(event)
            yield chunk
        for event in parser.finish():
            self._sniff(event)

    def _sniff(self, event: SSEEvent) -> None:
        if b'"usage"' not in event.data:
            return
        try:
            decoded = _event_decoder.decode(event.data)
        except msgspec.DecodeError:
            return
        if decoded.type == "message_start" and decoded.message and decoded.message.usage:
            self.add(decoded.message.usage, final=False)
        elif decoded.type == "message_delta" and decoded.usage is not None:
            self.add(decoded.usage, final=True)


def _stream_error(error: dict[str, Any], deployment: Deployment) -> TollwayError:
    kind = str(error.get("type") or "api_error")
    message = scrub(str(error.get("message") or "the upstream failed mid-stream"), deployment)
    if kind == "overloaded_error":
        return UpstreamStatusError(503, f"upstream overloaded: {message}", code=kind)
    if kind == "rate_limit_error":
        return UpstreamStatusError(429, message, type=kind, code=kind)
    return UpstreamStatusError(502, f"upstream error: {message}", code=kind)
