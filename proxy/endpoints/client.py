"""The HTTP client of the side endpoints: any method, any body, a streamed reply; and where
a path lives on a deployment (``upstream_head``) and how its errors read (``upstream_error``).

The inference engine's transport only POSTs; files, batches and pass-through routes also
GET and DELETE, and upload multipart bodies. One ``aiohttp`` session, created on first use
(a gateway that never serves these routes never opens it), closed with the gateway.
aiohttp's exceptions are translated here into the contract's (502 unreachable, 504 timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TypeAlias

from ..dialects import anthropic, cohere, openai
from ..errors import TollwayError, UpstreamTimeout, UpstreamUnreachable
from ..upstream.deployment import Deployment
from ..upstream.errors import to_error
from ..upstream.providers import ANTHROPIC_VERSION, AZURE_API_VERSION, openai_headers
from ..upstream.transport import Deadlines

if TYPE_CHECKING:
    import aiohttp

# aiohttp (about 14 MB resident) is imported when these routes are first used.
Body: TypeAlias = "bytes | aiohttp.FormData | None"


class UpstreamReply:
    """One upstream answer; ``read`` or ``chunks`` consume it, ``close`` is its one close path."""

    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers

    async def read(self, deadline: float | None = None) -> bytes:
        import aiohttp

        try:
            async with asyncio.timeout(deadline):
                return await self._resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("the upstream stopped sending its response") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable("the upstream connection failed mid-response") from exc
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (binary audio, a pass-through stream)."""
        import aiohttp

        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("the upstream stream stalled") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable("the upstream connection failed mid-stream") from exc

    def close(self) -> None:
        self._resp.close()


class SideClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
                trust_env=True,
            )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        deadlines: Deadlines,
    ) -> UpstreamReply:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=deadlines.connect, sock_read=deadlines.read
        )
        try:
            resp = await self._open().request(
                method, url, data=body, headers=dict(headers), timeout=timeout
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("the upstream did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"the upstream failed: {type(exc).__name__}") from exc
        return UpstreamReply(resp)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def upstream_head(
    deployment: Deployment, model: str, path: str, query: str = ""
) -> tuple[str, dict[str, str]]:
    """URL and headers of ``path`` on a deployment, with the deployment's credential."""
    base = (deployment.api_base or "").rstrip("/")
    provider = deployment.provider
    suffix = f"?{query}" if query else ""
    if provider == "azure":
        headers = {"accept-encoding": "identity"}
        if deployment.api_key:
            headers["api-key"] = deployment.api_key
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        if base.endswith("/openai/v1"):
            return f"{base}/{path}{suffix}", headers
        version = deployment.params.api_version or AZURE_API_VERSION
        query = f"api-version={version}" + (f"&{query}" if query else "")
        if path.startswith(("files", "batches")):
            return f"{base}/openai/{path}?{query}", headers
        return f"{base}/openai/deployments/{model}/{path}?{query}", headers
    if provider == "anthropic":
        headers = {"accept-encoding": "identity", "anthropic-version": ANTHROPIC_VERSION}
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        root = base if base.endswith("/v1") else f"{base}/v1"
        return f"{root}/{path}{suffix}", headers
    headers = openai_headers(deployment, False)
    if provider == "cohere":
        root = base.removesuffix("/v2").removesuffix("/v1")
        return f"{root}/v2/{path}{suffix}", headers
    return f"{base}/{path}{suffix}", headers


def upstream_error(deployment: Deployment, reply: UpstreamReply, raw: bytes) -> TollwayError:
    """An upstream error status in the contract's shape, the deployment's key scrubbed."""
    if deployment.provider == "anthropic":
        fault = anthropic.DIALECT.fault(reply.status, raw)
    elif deployment.provider == "cohere":
        fault = cohere.DIALECT.fault(reply.status, raw)
    else:
        fault = openai.DIALECT.fault(reply.status, raw)
    return to_error(fault, (deployment.api_key,), reply.headers.get("retry-after"))
