"""The provider engine: one request to one deployment, written once for every provider.

choose the body: the client's own bytes (only ``model`` rewritten) when the provider takes
  the client's format natively, else the provider dialect's encoding of the common model
→ url and headers from the registry entry (auth style, SigV4)
→ POST through the transport (deadlines, a dead keep-alive connection retried there)
→ an error status: the dialect reads the body into a ``Fault``, ``errors.to_error`` maps it
→ a stream: an ``UpstreamStream`` (framing + the dialect's event decoder, or a byte relay
  when the client speaks the upstream's format)
→ a body: read within the total deadline; kept as bytes when the client speaks its
  format, else decoded once by the dialect into the common model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from ..dialects import bedrock, openai
from ..dialects.base import EmbeddingOutbound, EventDecoder, Fault, Target
from ..errors import InvalidRequest, TollwayError, UpstreamStatusError, UpstreamTimeout
from ..model import ChatReply, EmbeddingReply, Usage
from ..request import Kind, ParsedRequest
from .deployment import Deployment
from .errors import scrubbed, to_error
from .framing import EventStreamFramer, Framer, SSEFramer
from .mock import MockTransport
from .native import NativeReader
from .providers import Provider, build_registry
from .spec import Operation
from .stream import UpstreamStream
from .transport import Deadlines, Transport, UpstreamResponse

JSON = b"application/json"
# ``openai/responses/gpt-4.1``: the deployment is called through the Responses API.
RESPONSES_PREFIX = "responses/"
EVENT_STREAM = b"text/event-stream"


class Reply:
    """What a deployment answered: bytes in the client's format, a typed reply, or a stream.

    ``body`` is set only when it is already in the client's format (``format``); otherwise
    ``typed`` holds the decoded reply for the respond stage to encode once.
    """

    __slots__ = ("body", "content_type", "format", "status", "stream", "typed", "usage")

    def __init__(
        self,
        *,
        status: int = 200,
        format: str = "openai",
        content_type: bytes = JSON,
        body: bytes | None = None,
        typed: ChatReply | EmbeddingReply | None = None,
        usage: Usage | None = None,
        stream: UpstreamStream | None = None,
    ) -> None:
        self.status = status
        self.format = format
        self.content_type = content_type
        self.body = body
        self.typed = typed
        self.usage = usage
        self.stream = stream

    def final_usage(self) -> Usage | None:
        """Usage once the reply is over (for a stream: whatever the stream reported)."""
        if self.stream is not None:
            return self.stream.usage
        return self.usage


class Engine:
    def __init__(
        self,
        transport: Transport,
        registry: Mapping[str, Provider] | None = None,
        mock: Transport | None = None,
    ) -> None:
        self.transport = transport
        self.registry = build_registry() if registry is None else registry
        self._mock = mock or MockTransport()

    async def close(self) -> None:
        await self.transport.close()

    async def send(
        self,
        request: ParsedRequest,
        deployment: Deployment,
        upstream_model: str,
        trace: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request to one deployment; ``trace`` (W3C ``traceparent``, only when tracing)
        goes up with the provider's headers."""
        provider = self.registry[deployment.provider]
        if upstream_model.startswith(RESPONSES_PREFIX) and provider.responses is not None:
            provider, upstream_model = provider.responses, upstream_model[len(RESPONSES_PREFIX) :]
        operation = _OPERATIONS[request.kind]
        if operation not in provider.operations:
            raise InvalidRequest(
                f"{provider.name}/ deployments serve "
                f"{', '.join('/v1/' + op.value for op in sorted(provider.operations, key=_order))}"
                f", not /v1/{operation.value}"
            )
        target = Target(
            model=upstream_model,
            max_output_tokens=deployment.info.max_output_tokens or deployment.info.max_tokens,
            provider=provider.name,
        )
        framer: Callable[[], Framer] = (
            EventStreamFramer if provider.framing == "aws-eventstream" else SSEFramer
        )
        native: NativeReader | None = None
        decode_reply: Callable[[bytes], ChatReply | EmbeddingReply] | None = None
        decoder: Callable[[], EventDecoder]
        headers_extra: dict[str, str] = {}
        if (
            provider.native == request.format
            and provider.native_reader is not None
            and not request.rewritten
        ):
            # The client speaks this provider's format: its bytes go up, the reply comes back.
            native = provider.native_reader(request, target, provider.dialect, framer)
            body, decoder, headers_extra = native.body(), native.decoder, request.headers
        elif request.kind is Kind.EMBEDDING:
            if not isinstance(provider.dialect, EmbeddingOutbound):
                raise InvalidRequest(f"{provider.name}/ deployments serve no embeddings")
            exchange = provider.dialect.embeddings(request.embedding(), target)
            body, decode_reply = exchange.body, exchange.decode_reply
            decoder = openai.ChunkDecoder
        else:
            chat_exchange = provider.dialect.chat(request.chat(), target)
            body, decode_reply = chat_exchange.body, chat_exchange.decode_reply
            decoder = chat_exchange.stream_decoder
        stream = request.stream
        url, headers = provider.request_head(deployment, upstream_model, operation, stream, body)
        if headers_extra:
            headers = {**headers_extra, **headers}
        if trace:
            headers = {**headers, **trace}
        transport = provider.transport or (
            self._mock if provider.name == "mock" else self.transport
        )
        resp = await transport.post(url, body, headers, deployment.deadlines)
        secrets = provider.secrets(deployment)
        if 300 <= resp.status < 400:
            # The transports follow no redirect (it could lead around the api_base checks).
            resp.close()
            raise UpstreamStatusError(
                502, f"the upstream answered a redirect (HTTP {resp.status}); none is followed"
            )
        if resp.status >= 400:
            raw = await _read_all(resp, deployment.deadlines)
            raise _error(provider, resp, raw, secrets)
        content_type = (resp.header("content-type") or "").encode("latin-1")
        if stream and _is_stream(content_type, provider):
            upstream = UpstreamStream(
                resp,
                format=request.format if native is not None else provider.dialect.name,
                framer=framer,
                decoder=decoder,
                relay=native.relay if native is not None else None,
                secrets=secrets,
            )
            return Reply(format=upstream.format, content_type=EVENT_STREAM, stream=upstream)
        raw = await _read_all(resp, deployment.deadlines)
        if native is not None:
            return Reply(
                format=request.format,
                content_type=content_type or JSON,
                body=raw,
                usage=native.usage(raw),
            )
        assert decode_reply is not None
        try:
            typed = decode_reply(raw)
        except TollwayError as exc:
            raise scrubbed(exc, secrets) from None
        return Reply(format=provider.dialect.name, typed=typed, usage=typed.usage)


_OPERATIONS = {kind: Operation(kind.value) for kind in Kind}


def _order(operation: Operation) -> int:
    return list(Operation).index(operation)


def _error(
    provider: Provider, resp: UpstreamResponse, raw: bytes, secrets: tuple[str, ...]
) -> TollwayError:
    retry_after = resp.header("retry-after")
    if provider.framing == "aws-eventstream":
        # Bedrock names the error in a header, not in the body; its mapping gives a 4xx its
        # contract type and keeps a model timeout an ``UpstreamTimeout`` (as its streams do).
        aws = bedrock.fault_from(resp.status, raw, resp.header("x-amzn-errortype"))
        return scrubbed(bedrock.error_of(aws, retry_after), secrets)
    fault: Fault = provider.dialect.fault(resp.status, raw)
    return to_error(fault, secrets, fault.retry_after or retry_after)


def _is_stream(content_type: bytes, provider: Provider) -> bool:
    if provider.framing == "aws-eventstream":
        return True
    return content_type.startswith(EVENT_STREAM)


async def _read_all(resp: UpstreamResponse, deadlines: Deadlines) -> bytes:
    """A reply's whole body, within the deployment's total deadline."""
    try:
        # A reply that arrived whole with its headers (the usual small one) is read without
        # waiting: no deadline to arm (``asyncio.timeout``'s bookkeeping showed in the
        # profile at about 4 % of the request's CPU).
        if deadlines.total is not None and not getattr(resp, "arrived", False):
            async with asyncio.timeout(deadlines.total):
                return await resp.read()
        return await resp.read()
    except TimeoutError as exc:
        resp.close()
        raise UpstreamTimeout(f"the upstream took over {deadlines.total:g}s") from exc
