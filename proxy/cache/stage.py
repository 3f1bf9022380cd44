"""The cache as an around-call stage: look up before the upstream, store after it.

    key      SHA-256 of the request's output-affecting content, prefixed by scope (the team;
             a key without a team: the key; or global) and namespace (``key.py``)
    lookup   exact first; then, for the semantic types, the last user turn's embedding among
             entries of the same conversation context, with the agreement check
    hit      the stored reply with a fresh id, or its stream replayed as events in the
             client's format; billed 0, logged with the cost it saved
    store    JSON replies when they arrive; a stream once it completed normally (a stream
             stage records its events; a cut or failed stream is never stored)

A store that is down makes the cache a miss (``CacheStore`` implementations never raise).
Per-request controls (LiteLLM's): body ``cache: {no-cache, no-store, ttl, s-maxage,
namespace}``, ``use-cache`` (``mode: default_off``), and the ``Cache-Control`` header; a key's
``allowed_cache_controls`` limits them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from ..dialects import anthropic, openai
from ..errors import PermissionDenied, TollwayError
from ..model import (
    ChatReply,
    Choice,
    Finish,
    FunctionCall,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    new_id,
)
from ..pipeline.call import Call
from ..pricing import cost
from ..request import Kind, ParsedRequest
from ..upstream.engine import EVENT_STREAM, Reply
from ..upstream.framing import SSEFramer
from ..upstream.mock import MockResponse
from ..upstream.sse import SSERelay
from ..upstream.stream import UpstreamStream
from .config import CacheSettings
from .key import cache_key
from .store import CacheStore

log = logging.getLogger("tollway.cache")

_MAX_AGE = re.compile(r"s-maxage\s*=\s*(\d+)")
_KINDS = {Kind.CHAT: "chat", Kind.COMPLETION: "completion", Kind.EMBEDDING: "embedding"}


class Entry(msgspec.Struct, kw_only=True, array_like=True):
    """What is stored: the typed chat reply (and its stream's events), or an OpenAI body."""

    stored_at: float
    cost: float = 0.0
    reply: ChatReply | None = None
    events: list[StreamEvent] | None = None
    body: bytes | None = None
    usage: Usage | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entry).decode


class Controls(msgspec.Struct, kw_only=True):
    read: bool = True
    write: bool = True
    ttl_s: float | None = None
    max_age_s: float | None = None
    namespace: str | None = None


class Semantic(msgspec.Struct, kw_only=True):
    """A semantic match found for a request (filled in by ``SemanticLayer``)."""

    key: str
    similarity: float


class SemanticLayer:
    """The hooks the semantic cache adds to the exact one (``semantic/layer.py``)."""

    async def find(self, call: Call, request: ParsedRequest, prefix: str) -> Semantic | None:
        return None

    async def remember(self, call: Call, request: ParsedRequest, prefix: str, key: str) -> None:
        return None


class Cache:
    def __init__(
        self,
        settings: CacheSettings,
        store: CacheStore,
        clock: Callable[[], float],
        semantic: SemanticLayer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.semantic = semantic or SemanticLayer()
        self.counts = {"hit": 0, "miss": 0, "bypass": 0, "semantic_hit": 0}

    # -- the around-call stage ------------------------------------------------------------
    async def __call__(
        self, call: Call, request: ParsedRequest, proceed: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        kind = _KINDS[request.kind]
        route = "messages" if request.format == "anthropic" else kind
        route = "responses" if request.format == "responses" else route
        controls = self._controls(call, request)
        if (
            route not in self.settings.call_types
            or controls is None
            or (request.stream and request.kind is not Kind.CHAT)
        ):
            call.cache_status = "bypass"
            self.counts["bypass"] += 1
            return await proceed()
        prefix = self._prefix(call, controls)
        key = cache_key(request, prefix)
        call.cache_key = key
        if controls.read:
            hit = await self._lookup(call, request, key, prefix, controls)
            if hit is not None:
                return hit
        call.cache_status = "miss"
        self.counts["miss"] += 1
        reply = await proceed()
        if controls.write and reply.status < 300:
            await self._keep(call, request, reply, key, prefix, controls)
        return reply

    async def _lookup(
        self, call: Call, request: ParsedRequest, key: str, prefix: str, controls: Controls
    ) -> Reply | None:
        raw = await self.store.get(key)
        similarity: float | None = None
        if raw is None and self.settings.semantic and request.kind is Kind.CHAT:
            found = await self.semantic.find(call, request, prefix)
            if found is not None:
                raw = await self.store.get(found.key)
                similarity = found.similarity
                key = found.key
        if raw is None:
            return None
        try:
            entry = _decode(raw)
        except msgspec.DecodeError:
            return None
        if controls.max_age_s is not None and self.clock() - entry.stored_at > controls.max_age_s:
            return None
        call.cache_status = "hit"
        # No upstream serves a hit: nothing to price (admission priced the worst case).
        call.price = None
        call.cache_key = key
        call.cache_similarity = similarity
        call.saved_cost = entry.cost
        self.counts["hit"] += 1
        if similarity is not None:
            self.counts["semantic_hit"] += 1
        return await _replayed(entry, request)

    async def _keep(
        self,
        call: Call,
        request: ParsedRequest,
        reply: Reply,
        key: str,
        prefix: str,
        controls: Controls,
    ) -> None:
        ttl = controls.ttl_s or self.settings.ttl_s
        if reply.stream is not None:
            reply.stream.add_stage(_Recorder(self, call, request, key, prefix, ttl))
            return
        entry = Entry(stored_at=self.clock(), usage=reply.usage)
        if request.kind is Kind.CHAT:
            typed = reply.typed if isinstance(reply.typed, ChatReply) else _decoded(reply)
            if typed is None:
                return
            entry.reply = typed
        elif reply.body is not None:
            entry.body = reply.body
        else:
            return
        entry.cost = _cost(call, reply.usage)
        await self._put(call, request, key, prefix, entry, ttl)

    async def _put(
        self,
        call: Call,
        request: ParsedRequest,
        key: str,
        prefix: str,
        entry: Entry,
        ttl: float | None,
    ) -> None:
        await self.store.set(key, _encode(entry), ttl)
        if self.settings.semantic and request.kind is Kind.CHAT:
            await self.semantic.remember(call, request, prefix, key)

    # -- controls and scope ---------------------------------------------------------------
    def _controls(self, call: Call, request: ParsedRequest) -> Controls | None:
        """What this request asked of the cache; None when it is not to be used at all."""
        asked = request.cache_controls()
        header = (call.cache_control or "").lower()
        used = [k for k in ("no-cache", "no-store", "ttl", "s-maxage", "namespace") if k in asked]
        used += [d for d in ("no-cache", "no-store", "s-maxage") if d in header]
        principal = call.principal
        allowed = (
            principal.key.metadata.get("allowed_cache_controls")
            if principal and principal.key
            else None
        )
        if isinstance(allowed, list):
            for control in dict.fromkeys(used):
                if control not in allowed:
                    raise PermissionDenied(
                        f"this key may not use the cache control {control!r} "
                        f"(allowed: {', '.join(allowed) or 'none'})",
                        code="cache_control_not_allowed",
                    )
        if not self.settings.default_on and asked.get("use-cache") is not True:
            return None
        controls = Controls(
            read=not (asked.get("no-cache") or "no-cache" in header),
            write=not (asked.get("no-store") or "no-store" in header),
            ttl_s=_positive(asked.get("ttl")),
            namespace=asked.get("namespace") if isinstance(asked.get("namespace"), str) else None,
        )
        max_age = _positive(asked.get("s-maxage"))
        found = _MAX_AGE.search(header)
        if found is not None:
            max_age = float(found.group(1))
        controls.max_age_s = max_age
        return controls

    def _prefix(self, call: Call, controls: Controls) -> str:
        namespace = (
            controls.namespace if controls.namespace is not None else self.settings.namespace
        )
        return f"{namespace}:{self._scope(call)}:"

    def _scope(self, call: Call) -> str:
        if self.settings.scope_global:
            return "global"
        principal = call.principal
        if principal is None:
            return "anonymous"
        if principal.team is not None:
            return f"team={principal.team.team_id}"
        if principal.key_hash is not None:
            return f"key={principal.key_hash}"
        return "master"


class _Recorder:
    """A stream stage that keeps the events as they pass and stores them when the stream
    completed normally (``on_end`` is only reached then)."""

    def __init__(
        self,
        cache: Cache,
        call: Call,
        request: ParsedRequest,
        key: str,
        prefix: str,
        ttl: float | None,
    ) -> None:
        self._cache, self._call, self._request = cache, call, request
        self._key, self._prefix, self._ttl = key, prefix, ttl
        self._events: list[StreamEvent] = []

    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        self._events.append(event)
        return [event]

    async def on_end(self) -> Sequence[StreamEvent]:
        usage = next((e.usage for e in reversed(self._events) if isinstance(e, UsageReport)), None)
        entry = Entry(
            stored_at=self._cache.clock(),
            events=self._events,
            usage=usage,
            cost=_cost(self._call, usage),
        )
        await self._cache._put(self._call, self._request, self._key, self._prefix, entry, self._ttl)
        return []


async def _replayed(entry: Entry, request: ParsedRequest) -> Reply:
    """A hit as a reply: JSON with a fresh id, or the stream replayed as it was chunked."""
    if entry.body is not None:
        return Reply(body=entry.body, usage=entry.usage, format="openai")
    if not request.stream:
        stored = entry.reply or _folded(entry.events or [])
        fresh = msgspec.structs.replace(stored, id=new_id())
        return Reply(typed=fresh, usage=fresh.usage, format="cache")
    events = entry.events or _events_of(entry.reply)
    encoder = openai.ChunkEncoder(include_usage=True)
    chunks = [
        encoder.encode(e)
        if not isinstance(e, Start)
        else encoder.encode(Start(id=new_id(), model=e.model))
        for e in events
    ]
    chunks.append(encoder.finish())
    response = MockResponse(200, "text/event-stream", [c for c in chunks if c])
    strip = not request.wants_usage_chunk
    stream = UpstreamStream(
        response,
        format="openai",
        framer=SSEFramer,
        decoder=openai.ChunkDecoder,
        relay=lambda: SSERelay(strip_usage_chunk=strip),
    )
    await stream.prime()
    return Reply(format="openai", content_type=EVENT_STREAM, stream=stream, usage=entry.usage)


def _events_of(reply: ChatReply | None) -> list[StreamEvent]:
    """A JSON-stored reply as stream events (one delta each), for a streaming hit."""
    if reply is None:
        return []
    message = reply.message
    events: list[StreamEvent] = [Start(id=reply.id, model=reply.model)]
    if message.reasoning_content:
        events.append(ReasoningDelta(message.reasoning_content))
    text = message.text()
    if text:
        events.append(TextDelta(text))
    for index, call in enumerate(message.tool_calls or ()):
        events.append(
            ToolCallDelta(
                index=index, id=call.id, name=call.function.name, arguments=call.arguments_text()
            )
        )
    events.append(Finish(reply.finish_reason or "stop"))
    if reply.usage is not None:
        events.append(UsageReport(reply.usage))
    return events


def _folded(events: list[StreamEvent]) -> ChatReply:
    """A stream-stored entry as one JSON reply, for a non-streaming hit."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, ToolCall] = {}
    finish = "stop"
    usage: Usage | None = None
    ident, model = new_id(), ""
    for event in events:
        if isinstance(event, Start):
            model = event.model
        elif isinstance(event, TextDelta):
            texts.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(
                event.index,
                ToolCall(
                    id=event.id or "", function=FunctionCall(name=event.name or "", arguments="")
                ),
            )
            call.function.arguments = str(call.function.arguments or "") + event.arguments
        elif isinstance(event, Finish):
            finish = event.reason
        elif isinstance(event, UsageReport):
            usage = event.usage
    tool_calls = [calls[i] for i in sorted(calls)] or None
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not tool_calls else None,
        tool_calls=tool_calls,
        reasoning_content="".join(reasoning) or None,
    )
    return ChatReply(
        id=ident, model=model, choices=[Choice(message=message, finish_reason=finish)], usage=usage
    )


def _decoded(reply: Reply) -> ChatReply | None:
    """A pass-through chat body as the typed reply (only done when the cache stores it)."""
    body = reply.body
    if body is None:
        return None
    try:
        if reply.format == "openai":
            return openai.decode_reply(body)
        if reply.format == "anthropic":
            return anthropic.decode_message(body, "", False)
    except TollwayError:
        return None
    return None


def _cost(call: Call, usage: Usage | None) -> float:
    if call.price is None or usage is None:
        return 0.0
    return cost(
        call.price,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
    )


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)
