"""What every provider adapter is: a deployment's settings, a reply, and the adapter protocol.

An adapter turns a parsed OpenAI-format request into one upstream call and returns a
``Reply`` whose bytes are already in OpenAI's wire format (a JSON body, or SSE events),
with the usage that the upstream reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..parse import ParsedRequest
from ..upstream.deployment import Deployment
from ..upstream.transport import Transport
from ..usage import Usage

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream"


class Reply:
    """An upstream answer in OpenAI format: either ``body`` or ``chunks`` is set."""

    __slots__ = ("_close", "_usage_of_stream", "body", "chunks", "content_type", "status", "usage")

    def __init__(
        self,
        *,
        status: int = 200,
        content_type: bytes = JSON,
        body: bytes | None = None,
        chunks: AsyncIterator[bytes] | None = None,
        usage: Usage | None = None,
        usage_of_stream: Callable[[], Usage | None] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.body = body
        self.chunks = chunks
        self.usage = usage
        self._usage_of_stream = usage_of_stream
        self._close = close

    def final_usage(self) -> Usage | None:
        """Usage once the reply is over (for a stream: whatever the stream reported)."""
        if self._usage_of_stream is not None:
            return self._usage_of_stream()
        return self.usage

    def close(self) -> None:
        if self._close is not None:
            self._close()


class Provider(Protocol):
    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply: ...


class ProviderFactory(Protocol):
    def __call__(self, transport: Transport) -> Provider: ...
