"""The aiohttp upstream client: one keep-alive pool per upstream base URL.

Used with ``TOLLWAY_UPSTREAM_CLIENT=aiohttp``, when a proxy is set in the environment,
and by alert delivery; imported only then. aiohttp's exceptions are translated here,
at the boundary, into the contract's: unreachable → ``UpstreamUnreachable`` (502),
connect or read deadline → ``UpstreamTimeout`` (504).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

import aiohttp

from ..errors import UpstreamTimeout, UpstreamUnreachable
from .transport import Deadlines, UpstreamResponse


class _AiohttpResponse:
    __slots__ = ("_deadlines", "_resp", "status")

    def __init__(self, resp: aiohttp.ClientResponse, deadlines: Deadlines) -> None:
        self._resp = resp
        self._deadlines = deadlines
        self.status = resp.status

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("the upstream stopped sending its response") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable("the upstream connection failed mid-response") from exc
        finally:
            self._resp.release()

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        content = self._resp.content
        deadlines = self._deadlines
        waited = deadlines.read
        try:
            chunk = await content.readany()
            if not chunk:
                return
            idle = deadlines.stream_idle
            if idle is not None and idle != deadlines.read:
                # The socket's read timer guarded the first byte; from here on it guards the
                # gap between chunks. Restarted now so the very next gap is bounded too.
                connection = self._resp.connection
                if connection is not None and connection.protocol is not None:
                    connection.protocol.read_timeout = idle
                    connection.protocol.start_timeout()
                    waited = idle
            yield chunk
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"the upstream stream stalled for over {waited:g}s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable("the upstream connection failed mid-stream") from exc

    def close(self) -> None:
        # close(), not release(): a half-read response must not go back to the pool, and
        # closing the socket is what tells the upstream to stop generating.
        self._resp.close()


class AiohttpTransport:
    def __init__(self, *, pool_size: int = 512) -> None:
        self._pool_size = pool_size
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, url: str) -> aiohttp.ClientSession:
        origin = _origin(url)
        session = self._sessions.get(origin)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, keepalive_timeout=30
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
                raise_for_status=False,
                trust_env=True,
            )
            self._sessions[origin] = session
        return session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=deadlines.connect, sock_read=deadlines.read
        )
        try:
            # Never follow a redirect: a 3xx to a metadata address would bypass the checks
            # api_base passed (TOLLWAY_UPSTREAM_ALLOW / _DENY), and would re-send the key.
            resp = await self._session(url).post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("the upstream did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnreachable(f"cannot connect to the upstream at {_origin(url)}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"the upstream at {_origin(url)} failed: {_kind(exc)}"
            ) from exc
        return _AiohttpResponse(resp, deadlines)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, without any credentials written into it."""
    scheme_end = url.find("://") + 3
    path_start = url.find("/", scheme_end)
    authority = url[scheme_end:] if path_start < 0 else url[scheme_end:path_start]
    return url[:scheme_end] + authority.rpartition("@")[2]


def _kind(exc: BaseException) -> str:
    return type(exc).__name__
