"""``anthropic/``: Anthropic's Messages API, both ways.

OpenAI chat in → Messages request out: system messages become ``system``; user content
parts become text / image blocks (data URLs → ``base64`` sources, other URLs → ``url``
sources); assistant ``tool_calls`` become ``tool_use`` blocks; ``tool`` messages become
``tool_result`` blocks in a user turn (consecutive same-role turns are merged, as Anthropic
requires alternation); ``tools``/``tool_choice``/``parallel_tool_calls``, ``temperature``,
``top_p``, ``stop`` → ``stop_sequences``, ``user`` → ``metadata.user_id``. ``max_tokens`` is
required by Anthropic: the client's, else the model's ``max_output_tokens``, else 4096.

JSON mode has no Anthropic switch, so it is emulated: ``response_format: json_object``
appends ``JSON_INSTRUCTION`` to the system prompt; ``json_schema`` forces a tool named
``JSON_TOOL`` whose input schema is the schema, and that tool's input comes back to the
client as the message text (streams too), with finish_reason ``stop``.

Messages reply → OpenAI: text, ``tool_use`` → ``tool_calls`` (arguments a JSON string),
``thinking`` → ``reasoning_content``; stop reasons ``end_turn``/``stop_sequence`` → stop,
``max_tokens`` → length, ``tool_use`` → tool_calls; usage in OpenAI's meaning: prompt =
input + cache read + cache creation, cached = cache read. Streams are translated event by
event (``_ChatStream``). A ``/v1/messages`` request (``MessagesRequest``) skips all of this:
its bytes go upstream with only ``model`` rewritten and the reply comes back untouched,
usage sniffed from the body or the ``message_start``/``message_delta`` events.

The key travels only in ``x-api-key``; error messages are scrubbed of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import orjson

from ..errors import TollwayError, UpstreamStatusError, UpstreamTimeout, UpstreamUnreachable
from ..formats.translate import (
    ChunkWriter,
    SSEEvent,
    SSEParser,
    chat_completion,
    chat_request,
    parse_data_url,
    tool_call_json,
    translate_events,
    usage,
)
from ..parse import ParsedRequest
from ..upstream import Transport, UpstreamResponse
from ..usage import Usage
from .base import EVENT_STREAM, Deployment, Reply
from .openai import scrub, upstream_error

DEFAULT_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_response"
JSON_INSTRUCTION = (
    "Respond only with a single valid JSON object. Do not add any text before or after it."
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


class MessagesRequest(ParsedRequest, kw_only=True):
    """A ``/v1/messages`` request: OpenAI chat fields (for every other provider) plus the
    client's own Anthropic bytes, which an ``anthropic/`` deployment receives unchanged."""

    native_body: bytes
    native_headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Set by the adapter that answered in Anthropic's format, so the route relays untouched.
    answered_natively: bool = False


class AnthropicProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def headers(
        self, deployment: Deployment, stream: bool, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "accept-encoding": "identity",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if extra:
            headers.update(extra)
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return headers

    @staticmethod
    def url(deployment: Deployment) -> str:
        base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        if isinstance(request, MessagesRequest):
            return await self._send_native(request, deployment, upstream_model)
        body = chat_request(request)
        json_tool = _json_tool_requested(body)
        wire = orjson.dumps(build_messages_request(body, deployment, upstream_model))
        resp = await self._post(deployment, wire, request.stream)
        if request.stream and _is_event_stream(resp):
            stream = _ChatStream(upstream_model, request.wants_usage_chunk, json_tool, deployment)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=stream.run(resp.iter_chunks()),
                usage_of_stream=stream.final_usage,
                close=resp.close,
            )
        raw = await _read(resp, deployment)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnreachable("the upstream sent a reply that is not JSON") from exc
        body_out, reported = translate_message(payload, upstream_model, json_tool)
        return Reply(body=body_out, usage=reported)

    async def _send_native(
        self, request: MessagesRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        wire = _with_model(request.native_body, upstream_model)
        resp = await self._post(deployment, wire, request.stream, request.native_headers)
        if request.stream and _is_event_stream(resp):
            sniffer = NativeUsage()
            request.answered_natively = True
            return Reply(
                content_type=EVENT_STREAM,
                chunks=sniffer.relay(resp.iter_chunks()),
                usage_of_stream=sniffer.final,
                close=resp.close,
            )
        raw = await _read(resp, deployment)
        request.answered_natively = True
        return Reply(body=raw, usage=native_body_usage(raw))

    async def _post(
        self,
        deployment: Deployment,
        wire: bytes,
        stream: bool,
        extra: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        headers = self.headers(deployment, stream, extra)
        resp = await self._transport.post(self.url(deployment), wire, headers, deployment.deadlines)
        if resp.status >= 400:
            raw = await resp.read()
            raise anthropic_error(resp.status, raw, resp.header("retry-after"), deployment)
        return resp


# -- request ------------------------------------------------------------------------------


def build_messages_request(
    body: dict[str, Any], deployment: Deployment, upstream_model: str
) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic Messages request body."""
    system, messages = _convert_messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": upstream_model, "messages": messages}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    info = deployment.info
    default_max = info.max_output_tokens or info.max_tokens or DEFAULT_MAX_TOKENS
    out["max_tokens"] = max_tokens or default_max
    tools = [_tool(t) for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    tool_choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_INSTRUCTION})
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        tools.append(
            {
                "name": JSON_TOOL,
                "description": "Respond with a JSON object matching this schema.",
                "input_schema": spec.get("schema") or {"type": "object"},
            }
        )
        tool_choice = {"type": "tool", "name": JSON_TOOL}
    if system:
        out["system"] = system
    if tools:
        out["tools"] = tools
    if tool_choice is not None and (tools or tool_choice.get("type") == "none"):
        out["tool_choice"] = tool_choice
    for name in ("temperature", "top_p", "top_k", "thinking"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("stream"):
        out["stream"] = True
    return out


def _convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_content_blocks(content))
        elif role in ("tool", "function"):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id") or message.get("name") or "",
                "content": _content_blocks(content) or "",
            }
            append("user", [result])
        elif role == "assistant":
            blocks = _content_blocks(content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or "",
                        "name": function.get("name") or "",
                        "input": _arguments(function.get("arguments")),
                    }
                )
            append("assistant", blocks)
        else:
            append("user", _content_blocks(content))
    return system, out


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        block: dict[str, Any] | None = None
        if kind == "text":
            text = part.get("text") or ""
            block = {"type": "text", "text": text} if text else None
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            block = _image_block(url)
        elif kind in ("image", "document", "tool_use", "tool_result", "thinking"):
            block = {k: v for k, v in part.items() if k != "cache_control"}
        if block is None:
            continue
        if part.get("cache_control") is not None:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is not None:
        mime, data = parsed
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": function.get("name") or "",
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out = {"type": "tool", "name": name} if name else None
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _json_tool_requested(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _with_model(native: bytes, model: str) -> bytes:
    fields = _raw_decoder.decode(native)
    fields["model"] = msgspec.Raw(msgspec.json.encode(model))
    return msgspec.json.encode(fields)


# -- response -----------------------------------------------------------------------------


def translate_message(
    payload: dict[str, Any], model: str, json_tool: bool = False
) -> tuple[bytes, Usage | None]:
    """An Anthropic ``message`` body as an OpenAI ``chat.completion`` body, and its usage."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in payload.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool and block.get("name") == JSON_TOOL:
                texts.append(arguments)
            else:
                calls.append(tool_call_json(block.get("id") or "", block.get("name"), arguments))
    finish = FINISH_REASONS.get(payload.get("stop_reason") or "", "stop")
    if finish == "tool_calls" and not calls:
        finish = "stop"
    reported = anthropic_usage(payload.get("usage"))
    body = chat_completion(
        ident="chatcmpl-" + str(payload.get("id") or ""),
        model=str(payload.get("model") or model),
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls,
        finish_reason=finish,
        usage=reported,
        reasoning="".join(thinking) or None,
    )
    return body, reported


def anthropic_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached
    prompt += int(raw.get("cache_creation_input_tokens") or 0)
    return usage(prompt, int(raw.get("output_tokens") or 0), cached=cached)


class _ChatStream:
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
                self.finish = FINISH_REASONS.get(reason, "stop")
                if self.finish == "tool_calls" and not self.tool_calls:
                    self.finish = "stop"
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


# -- errors and plumbing ------------------------------------------------------------------


def anthropic_error(
    status: int, raw: bytes, retry_after: str | None, deployment: Deployment
) -> TollwayError:
    """Anthropic's ``{"type": "error", "error": {type, message}}`` as the contract's error.

    529 (``overloaded_error``) becomes a retryable 503, so the router tries elsewhere.
    """
    if status == 529:
        message = upstream_error(500, raw, None, deployment).message.partition(": ")[2]
        return UpstreamStatusError(
            503,
            f"upstream overloaded (529): {message}",
            type="upstream_error",
            code="overloaded_error",
            retry_after=retry_after,
        )
    return upstream_error(status, raw, retry_after, deployment)


def _stream_error(error: dict[str, Any], deployment: Deployment) -> TollwayError:
    kind = str(error.get("type") or "api_error")
    message = scrub(str(error.get("message") or "the upstream failed mid-stream"), deployment)
    if kind == "overloaded_error":
        return UpstreamStatusError(503, f"upstream overloaded: {message}", code=kind)
    if kind == "rate_limit_error":
        return UpstreamStatusError(429, message, type=kind, code=kind)
    return UpstreamStatusError(502, f"upstream error: {message}", code=kind)


def _is_event_stream(resp: UpstreamResponse) -> bool:
    return (resp.header("content-type") or "").startswith("text/event-stream")


async def _read(resp: UpstreamResponse, deployment: Deployment) -> bytes:
    total = deployment.deadlines.total
    try:
        if total is None:
            return await resp.read()
        async with asyncio.timeout(total):
            return await resp.read()
    except TimeoutError as exc:
        resp.close()
        raise UpstreamTimeout(f"the upstream took over {total:g}s") from exc
