"""A scripted ``Transport`` for engine unit tests: canned replies at the upstream seam.

Each ``post`` records what the engine sent (URL, headers, decoded body) and answers with the
next scripted ``Canned`` reply; a streamed reply can be cut into any pieces (one byte at a
time, say) to prove the engine reassembles events however the bytes arrive.

``send`` runs one request through ``Engine``; ``client_body`` and ``collect`` give the bytes
the client would see, encoded by the inbound format the way the respond stage does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.config import ModelEntry, RouterSettings, parse_config
from proxy.dialects.openai import parse
from proxy.pipeline.formats import InboundFormat, MessagesFormat, ResponsesFormat
from proxy.request import Kind, ParsedRequest
from proxy.server.settings import Settings
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import Engine, Reply
from proxy.upstream.providers import build_deployment
from proxy.upstream.transport import Deadlines, Transport


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Canned:
        return cls(status=status, body=orjson.dumps(payload), headers=headers)

    @classmethod
    def stream(cls, data: bytes, *, piece: int = 1) -> Canned:
        """An SSE reply delivered ``piece`` bytes at a time."""
        chunks = [data[i : i + piece] for i in range(0, len(data), piece)]
        return cls(chunks=chunks, headers={"content-type": "text/event-stream"})


@dataclass
class Sent:
    url: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)


class _Response:
    def __init__(self, canned: Canned) -> None:
        self.status = canned.status
        self._canned = canned
        self.closed = False

    def header(self, name: str) -> str | None:
        return self._canned.headers.get(name.lower())

    async def read(self) -> bytes:
        return self._canned.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._canned.chunks or [self._canned.body]:
            yield chunk

    def close(self) -> None:
        self.closed = True


class ScriptedTransport:
    def __init__(self, *replies: Canned) -> None:
        self.replies = list(replies)
        self.sent: list[Sent] = []

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> _Response:
        self.sent.append(Sent(url, dict(headers), body))
        return _Response(self.replies.pop(0))

    async def close(self) -> None:
        return None

    @property
    def last(self) -> Sent:
        return self.sent[-1]


def make_deployment(model: str, **params: Any) -> Deployment:
    lines = ["model_list:", "  - model_name: test-model", "    litellm_params:"]
    lines.append(f"      model: {model}")
    lines += [f"      {key}: {value}" for key, value in params.items()]
    config = parse_config("\n".join(lines) + "\n", "test.yaml", {})
    entry: ModelEntry = config.model_list[0]
    return build_deployment(0, entry, RouterSettings(), Settings())


def chat_request(kind: Kind = Kind.CHAT, **body: Any) -> ParsedRequest:
    body.setdefault("model", "test-model")
    if kind is Kind.CHAT:
        body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return parse(kind, orjson.dumps(body))


async def send(
    transport: Transport,
    request: ParsedRequest,
    deployment: Deployment,
    upstream_model: str | None = None,
) -> Reply:
    """One request through the engine (the upstream model resolved as the router does)."""
    model = upstream_model or deployment.resolve_model(request.model)
    return await Engine(transport).send(request, deployment, model)


def inbound_for(request: ParsedRequest | None) -> InboundFormat:
    """The inbound format a client of ``request`` speaks (OpenAI chat when unknown)."""
    if request is None:
        return InboundFormat(Kind.CHAT)
    if request.format == "anthropic":
        return MessagesFormat()
    if request.format == "responses":
        return ResponsesFormat()
    return InboundFormat(request.kind)


def client_body(reply: Reply, request: ParsedRequest) -> bytes:
    """The JSON body the client would receive for a non-streamed ``reply``."""
    if reply.body is not None:
        return reply.body
    assert reply.typed is not None, "not a body reply"
    return inbound_for(request).encode_reply(request, reply.typed)


async def collect(reply: Reply, request: ParsedRequest | None = None) -> bytes:
    """The bytes a client of ``request`` would receive for a streamed ``reply``.

    The upstream's bytes as relayed when the client speaks its format, else the stream's
    events through the client format's encoder, as the respond stage writes them. Without
    ``request`` the client is an OpenAI chat client that asked for the usage chunk. An
    error mid-stream propagates (after the stream is closed).
    """
    stream = reply.stream
    assert stream is not None, "not a streamed reply"
    inbound = inbound_for(request)
    try:
        await stream.prime()
        if stream.relays_raw and stream.format == inbound.name:
            return b"".join([chunk async for chunk in stream.raw()])
        if request is None:
            encoder: Any = inbound.stream_encoder(
                chat_request(stream=True, stream_options={"include_usage": True})
            )
        else:
            encoder = inbound.stream_encoder(request)
        out = [encoder.encode(event) async for event in stream.events()]
        out.append(encoder.finish())
        return b"".join(out)
    finally:
        await stream.aclose()


def sse_chunks(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    """The OpenAI chunks of a translated stream, and whether it ended with ``[DONE]``."""
    chunks, done = [], False
    for event in raw.split(b"\n\n"):
        if not event:
            continue
        assert event.startswith(b"data: "), event
        assert not done, "an event after [DONE]"
        if event == b"data: [DONE]":
            done = True
        else:
            chunks.append(orjson.loads(event[6:]))
    return chunks, done
