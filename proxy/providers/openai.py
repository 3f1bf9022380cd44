"""OpenAI and every OpenAI-compatible server: the zero-copy pass-through path.

The client's body goes upstream with only ``model`` rewritten (and usage requested on
streams); the upstream's bytes come back untouched, SSE events relayed as they arrive.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from ..errors import TollwayError, UpstreamStatusError, UpstreamTimeout
from ..parse import ParsedRequest, forward_body
from ..upstream.sse import SSERelay, relay
from ..upstream.transport import Transport
from ..usage import usage_from_body
from .base import EVENT_STREAM, JSON, Deployment, Reply


class OpenAICompatible:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def headers(self, deployment: Deployment, stream: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "accept-encoding": "identity",
        }
        if deployment.api_key:
            headers["authorization"] = f"Bearer {deployment.api_key}"
        if deployment.params.organization:
            headers["openai-organization"] = deployment.params.organization
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        return headers

    def url(self, request: ParsedRequest, deployment: Deployment) -> str:
        return f"{deployment.api_base.rstrip('/')}/{request.kind.value}"

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        body = forward_body(request, upstream_model)
        deadlines = deployment.deadlines
        resp = await self._transport.post(
            self.url(request, deployment),
            body,
            self.headers(deployment, request.stream),
            deadlines,
        )
        if resp.status >= 400:
            raw = await resp.read()
            raise upstream_error(resp.status, raw, resp.header("retry-after"), deployment)
        content_type = (resp.header("content-type") or "application/json").encode("latin-1")
        if request.stream and content_type.startswith(EVENT_STREAM):
            state = SSERelay(strip_usage_chunk=not request.wants_usage_chunk)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=relay(resp.iter_chunks(), state),
                usage_of_stream=lambda: state.usage,
                close=resp.close,
            )
        try:
            if deadlines.total is not None:
                async with asyncio.timeout(deadlines.total):
                    raw = await resp.read()
            else:
                raw = await resp.read()
        except TimeoutError as exc:
            resp.close()
            raise UpstreamTimeout(f"the upstream took over {deadlines.total:g}s") from exc
        return Reply(content_type=content_type or JSON, body=raw, usage=usage_from_body(raw))


class _ErrorEnvelope(msgspec.Struct):
    error: Any = None
    message: Any = None
    detail: Any = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def upstream_error(
    status: int, raw: bytes, retry_after: str | None, deployment: Deployment
) -> TollwayError:
    """The contract error for an upstream error reply, with every secret scrubbed."""
    message, type_, param, code = f"the upstream returned HTTP {status}", None, None, None
    try:
        envelope = _error_decoder.decode(raw)
    except msgspec.DecodeError:
        envelope = None
    if envelope is not None:
        err = envelope.error
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            type_ = _short(err.get("type"))
            param = _short(err.get("param"))
            code = _short(err.get("code"))
        elif isinstance(err, str):
            message = err
        elif isinstance(envelope.message, str):
            message = envelope.message
        elif isinstance(envelope.detail, str):
            message = envelope.detail
    message = scrub(message[:2000], deployment)
    if status >= 500:
        return UpstreamStatusError(
            502,
            f"upstream error ({status}): {message}",
            type="upstream_error",
            code=str(status),
            upstream_status=status,
        )
    return UpstreamStatusError(
        status, message, type=type_, param=param, code=code, retry_after=retry_after
    )


def scrub(text: str, deployment: Deployment) -> str:
    key = deployment.api_key
    if key and len(key) >= 4 and key in text:
        text = text.replace(key, "[redacted]")
    return text


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:200]
