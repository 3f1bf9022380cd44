"""Shared pieces for adapters that translate between OpenAI's chat format and another one.

- ``chat_request(request)``: the client's OpenAI chat body as a dict (decoded once, only on
  translating paths; the pass-through path never calls it).
- ``SSEParser``: split any provider's SSE bytes into ``(event, data)`` pairs.
- ``ChunkWriter``: build OpenAI ``chat.completion.chunk`` SSE events (text, tool-call
  deltas with index/id/name on the first, finish, the usage chunk, ``[DONE]``).
- ``chat_completion``: a whole ``chat.completion`` body.
- ``append_turn``: merge consecutive same-role turns (for providers that want alternation).
- ``usage``/``usage_json``, ``parse_data_url``, ``text_of``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..parse import ParsedRequest
from ..upstream.sse import EVENT_BOUNDARY
from ..usage import CompletionDetails, PromptDetails, Usage

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,")


def chat_request(request: ParsedRequest) -> dict[str, Any]:
    """The client's chat body as plain objects (for adapters that rebuild it)."""
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def text_of(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return str(content)


def append_turn(
    turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], key: str = "content"
) -> None:
    """Add ``blocks`` as a ``role`` turn, or to the last turn when it is ``role``'s too.

    Anthropic, Gemini and Bedrock want user and assistant turns to alternate: consecutive
    messages of one side become one turn (parallel tool results in particular must arrive
    together).
    """
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: blocks})


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → ``("image/png", "AAAA")``; None for other URLs."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group("mime") or "application/octet-stream", url[match.end() :]


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Usage:
    """OpenAI-meaning usage: ``prompt`` includes ``cached``; ``completion`` ``reasoning``."""
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptDetails(cached_tokens=cached),
        completion_tokens_details=CompletionDetails(reasoning_tokens=reasoning),
    )


def usage_json(value: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": value.prompt_tokens,
        "completion_tokens": value.completion_tokens,
        "total_tokens": value.total_tokens,
        "prompt_tokens_details": {"cached_tokens": value.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": value.reasoning_tokens},
    }


def tool_call_json(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_completion(
    *,
    ident: str,
    model: str,
    content: str | None,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    usage: Usage | None,
    reasoning: str | None = None,
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        body["usage"] = usage_json(usage)
    return orjson.dumps(body)


class ChunkWriter:
    """OpenAI ``chat.completion.chunk`` SSE events for one streamed reply."""

    __slots__ = ("_prefix", "include_usage")

    def __init__(self, ident: str, model: str, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        head = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        # Every chunk shares its head; only "choices" (and "usage") change.
        self._prefix = orjson.dumps(head)[:-1] + b","

    def _event(self, rest: dict[str, Any]) -> bytes:
        return b"data: " + self._prefix + orjson.dumps(rest)[1:] + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._event({"choices": [choice]})

    def role(self) -> bytes:
        return self._delta({"role": "assistant", "content": ""})

    def text(self, piece: str) -> bytes:
        return self._delta({"content": piece})

    def reasoning(self, piece: str) -> bytes:
        return self._delta({"reasoning_content": piece})

    def tool_call_start(self, index: int, call_id: str, name: str, arguments: str = "") -> bytes:
        call = {"index": index, **tool_call_json(call_id, name, arguments)}
        return self._delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, piece: str) -> bytes:
        return self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def finish(self, reason: str) -> bytes:
        return self._delta({}, reason)

    def usage_chunk(self, value: Usage) -> bytes:
        """The final usage-only chunk, or nothing when the client did not ask for it."""
        if not self.include_usage:
            return b""
        return self._event({"choices": [], "usage": usage_json(value)})

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


class SSEEvent:
    __slots__ = ("data", "event", "raw")

    def __init__(self, event: str | None, data: bytes, raw: bytes) -> None:
        self.event = event
        self.data = data
        self.raw = raw


class SSEParser:
    """Feed upstream chunks; get back the complete events (with their raw bytes)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        data = self._buffer + chunk if self._buffer else chunk
        events = []
        last_end = 0
        for match in EVENT_BOUNDARY.finditer(data):
            event = _parse_event(data[last_end : match.end()])
            if event is not None:
                events.append(event)
            last_end = match.end()
        self._buffer = data[last_end:]
        return events

    def finish(self) -> list[SSEEvent]:
        rest, self._buffer = self._buffer, b""
        event = _parse_event(rest) if rest.strip() else None
        return [event] if event is not None else []


async def translate_events(
    chunks: AsyncIterator[bytes], on: Callable[[SSEEvent], bytes]
) -> AsyncIterator[bytes]:
    """Upstream SSE bytes through ``on`` (one event in, translated bytes out), per chunk.

    Yields what each upstream chunk translated to (skipping empty results), then what the
    events left in the parser at the end of the stream translate to.
    """
    parser = SSEParser()
    async for chunk in chunks:
        out = b"".join([on(event) for event in parser.feed(chunk)])
        if out:
            yield out
    out = b"".join([on(event) for event in parser.finish()])
    if out:
        yield out


def _parse_event(raw: bytes) -> SSEEvent | None:
    name: str | None = None
    lines = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not lines and name is None:
        return None
    return SSEEvent(name, b"\n".join(lines), raw)
