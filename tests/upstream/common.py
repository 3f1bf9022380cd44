"""Shared pieces of the engine tests: what the engine answered, seen as the OpenAI client."""

from __future__ import annotations

from typing import Any

from proxy.pipeline.formats import InboundFormat
from proxy.request import ParsedRequest
from proxy.upstream.engine import Reply
from tests.providers.scripted import client_body


class Result:
    """What the engine answered, and the bytes the OpenAI client would have been sent."""

    def __init__(self, request: ParsedRequest, reply: Reply) -> None:
        self.request = request
        self.reply = reply

    @property
    def usage(self) -> Any:
        return self.reply.usage

    def final_usage(self) -> Any:
        return self.reply.final_usage()

    @property
    def body(self) -> bytes:
        return client_body(self.reply, self.request)

    async def stream(self, seen: list[bytes] | None = None) -> bytes:
        """The client's stream bytes; an upstream failure mid-stream is raised, as the
        respond stage sees it, after the bytes already written (kept in ``seen``)."""
        stream = self.reply.stream
        assert stream is not None
        out = [] if seen is None else seen
        encoder = InboundFormat(self.request.kind).stream_encoder(self.request)
        try:
            await stream.prime()
            async for event in stream.events():
                out.append(encoder.encode(event))
            out.append(encoder.finish())
        finally:
            await stream.aclose()
        return b"".join(out)
