"""The seam between the gateway and upstream HTTP servers: the deadlines and the
protocols. The aiohttp client is in ``aiohttp_transport``, imported only by a gateway
that uses it (about 14 MB resident); the default upstream client is ``lean``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Protocol

import msgspec


class Deadlines(msgspec.Struct, frozen=True):
    connect: float
    # Time to first byte: to the response headers, and on a stream to its first chunk.
    read: float
    # Whole exchange, for non-streaming calls (streams are bounded per chunk instead).
    total: float | None = None
    # The longest silence between two chunks of a stream once it started (``stream_timeout``);
    # None means ``read``.
    stream_idle: float | None = None


class ChunkStream(Protocol):
    """A reply's body as it arrives: ``async for`` (or ``anext``) and ``aclose()``. An async
    generator is one; the lean client's is a class, so that mypyc compiles it."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]: ...


class UpstreamResponse(Protocol):
    """One upstream reply. A response may also have ``arrived`` (True once the whole body
    is in, so ``read`` returns without waiting): the engine then skips arming the total
    deadline around ``read`` (``engine._read_all``). Without it the deadline is armed."""

    status: int

    def header(self, name: str) -> str | None: ...
    async def read(self) -> bytes: ...
    def iter_chunks(self) -> ChunkStream: ...
    def close(self) -> None: ...


class Transport(Protocol):
    """What providers need from the network; tests may put their own fake here."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...
