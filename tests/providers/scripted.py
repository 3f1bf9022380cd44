"""A scripted ``Transport`` for adapter unit tests: canned replies at the upstream seam.

Each ``post`` records what the adapter sent (URL, headers, decoded body) and answers with the
next scripted ``Canned`` reply; a streamed reply can be cut into any pieces (one byte at a
time, say) to prove the adapter reassembles events however the bytes arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.config import ModelEntry, RouterSettings, parse_config
from proxy.request import Kind, ParsedRequest, parse
from proxy.providers import build_deployment
from proxy.providers.base import Deployment, Reply
from proxy.server.settings import Settings
from proxy.upstream.transport import Deadlines


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


async def collect(reply: Reply) -> bytes:
    assert reply.chunks is not None
    return b"".join([chunk async for chunk in reply.chunks])


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
