"""OpenTelemetry: one span per call (GenAI semantic conventions), one child per upstream attempt.

Spans are made from the ``CallEvent`` in the sink's worker, off the request path, with the
call's own start and end times, encoded with the OTLP protobuf encoder and POSTed to
``{endpoint}/v1/traces`` through the gateway's own HTTP client (so nothing blocks the loop and
the bus's queue and backoff apply). A receiver that is slow or down only costs dropped spans.

    call span   ``{gen_ai.operation.name} {gen_ai.request.model}``, kind CLIENT; the child of
                the client's ``traceparent`` when it sent one (same trace id)
    └ attempt   one per upstream try (retries, fallbacks), with the span id the upstream was
                sent as its ``traceparent`` parent

Read from the environment (LiteLLM's names, then the OpenTelemetry standard ones):
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is), ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_ENDPOINT`` (``/v1/traces`` appended unless present; default
``http://localhost:4318``), ``OTEL_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS`` /
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` (``k=v,k2=v2``, values URL-decoded),
``OTEL_SERVICE_NAME`` (default ``tollway``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_BSP_SCHEDULE_DELAY`` (ms a batch may wait to fill, default 1000) and
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (events per export, default 256).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ...upstream.transport import Deadlines, Transport
from ..event import AttemptEvent, CallEvent
from ..trace import new_span_id, new_trace_id

log = logging.getLogger("tollway.observe")

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
# OTLP/HTTP: these statuses may succeed later; anything else will not.
RETRYABLE = frozenset({429, 502, 503, 504})

OPERATIONS = {
    "chat/completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
# Tollway's provider names → the GenAI conventions' ``gen_ai.provider.name`` values.
PROVIDERS = {
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "gemini": "gcp.gemini",
    "groq": "groq",
    "mistral": "mistral_ai",
    "openai": "openai",
    "perplexity": "perplexity",
    "xai": "x_ai",
}


class OtelSink:
    """Exports each batch of events as one OTLP/HTTP protobuf request."""

    name = "otel"

    def __init__(
        self,
        transport: Transport,
        *,
        endpoint: str,
        headers: Mapping[str, str],
        resource: Resource,
        max_batch: int = 256,
        flush_interval_s: float = 1.0,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.transport = transport
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.endpoint = endpoint
        self.headers = {**headers, "content-type": PROTOBUF}
        self.resource = resource
        self.scope = InstrumentationScope("tollway")
        self.deadlines = deadlines or Deadlines(connect=5.0, read=10.0, total=10.0)

    async def send(self, batch: Sequence[CallEvent]) -> None:
        sampled = [event for event in batch if event.trace_sampled]
        if not sampled:
            return
        # Building and encoding a batch is pure CPU (~0.2 ms an event): done in a thread so
        # the loop keeps serving requests meanwhile.
        body = await asyncio.to_thread(self.encode, sampled)
        resp = await self.transport.post(self.endpoint, body, self.headers, self.deadlines)
        await resp.read()
        if resp.status in RETRYABLE:
            raise RuntimeError(f"the OTLP receiver answered {resp.status}")
        if resp.status >= 400:
            # Sending the same spans again would be refused again.
            log.warning(
                "otel: the receiver refused %d calls' spans (%d)", len(sampled), resp.status
            )

    def encode(self, events: Sequence[CallEvent]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding every event's spans, serialized."""
        spans = [span for event in events for span in self.spans(event)]
        return bytes(encode_spans(spans).SerializeToString())

    async def close(self) -> None:
        """The transport is the gateway's; its owner closes it."""

    def spans(self, event: CallEvent) -> list[ReadableSpan]:
        """The call's span and one child per upstream attempt."""
        trace_id = int(event.trace_id or new_trace_id(), 16)
        state = _trace_state(event.trace_state)
        flags = TraceFlags(TraceFlags.SAMPLED)
        parent = None
        if event.parent_span_id is not None:
            parent = SpanContext(trace_id, int(event.parent_span_id, 16), True, flags, state)
        context = SpanContext(trace_id, int(new_span_id(), 16), False, flags, state)
        # A call refused before its body was read has no operation or model.
        operation = OPERATIONS.get(event.kind, event.kind) or "tollway.call"
        failed = event.status != "success"
        call = ReadableSpan(
            name=f"{operation} {event.model_group}" if event.model_group else operation,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=_call_attributes(event, operation),
            kind=SpanKind.CLIENT,
            status=_status(failed, event.error_message),
            start_time=_ns(event.start_time),
            end_time=_ns(event.end_time),
            instrumentation_scope=self.scope,
        )
        out = [call]
        for number, attempt in enumerate(event.attempts, 1):
            out.append(self._attempt_span(attempt, number, operation, context, state))
        return out

    def _attempt_span(
        self,
        attempt: AttemptEvent,
        number: int,
        operation: str,
        parent: SpanContext,
        state: TraceState | None,
    ) -> ReadableSpan:
        provider, _, model = attempt.deployment.partition("/")
        context = SpanContext(
            parent.trace_id, int(attempt.span_id, 16), False, parent.trace_flags, state
        )
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDERS.get(provider, provider),
            "gen_ai.system": PROVIDERS.get(provider, provider),
            "gen_ai.request.model": model,
            "tollway.deployment": attempt.deployment,
            "tollway.attempt": number,
        }
        if attempt.status:
            attributes["http.response.status_code"] = attempt.status
        failed = attempt.error_type is not None
        if failed:
            attributes["error.type"] = attempt.error_type
        return ReadableSpan(
            name=f"{operation} {model}",
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=SpanKind.CLIENT,
            status=_status(failed, attempt.error_type),
            start_time=_ns(attempt.start_time),
            end_time=_ns(attempt.end_time),
            instrumentation_scope=self.scope,
        )


def _call_attributes(event: CallEvent, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if event.kind:
        attributes["gen_ai.operation.name"] = operation
    if event.provider is not None:
        provider = PROVIDERS.get(event.provider, event.provider)
        attributes["gen_ai.provider.name"] = provider
        attributes["gen_ai.system"] = provider
    if event.model_group is not None:
        attributes["gen_ai.request.model"] = event.model_group
    if event.deployment is not None:
        attributes["gen_ai.response.model"] = event.deployment.partition("/")[2]
        attributes["tollway.deployment"] = event.deployment
    if event.prompt_tokens or event.completion_tokens:
        attributes["gen_ai.usage.input_tokens"] = event.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = event.completion_tokens
    if event.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = event.cached_tokens
    if event.status != "success":
        attributes["error.type"] = event.error_type or str(event.status_code)
    if event.status_code:
        attributes["http.response.status_code"] = event.status_code
    attributes.update(
        {
            "tollway.call_id": event.call_id,
            "tollway.route": event.route,
            "tollway.status": event.status,
            "tollway.cost": event.cost,
            "tollway.cache_hit": event.cache_hit,
            "tollway.retries": event.retries,
            "tollway.fallbacks": event.fallbacks,
            "tollway.latency_ms": event.latency_ms,
            "tollway.overhead_ms": event.overhead_ms,
            "tollway.stream": event.stream,
        }
    )
    # The key's alias names it; the key itself (and its hash) never leaves the gateway.
    optional = {
        "tollway.key_alias": event.key_alias,
        "tollway.team_id": event.team_id,
        "tollway.user_id": event.user_id,
        "tollway.end_user": event.end_user,
        "tollway.time_to_first_token_ms": event.time_to_first_token_ms,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if event.saved_cost:
        attributes["tollway.saved_cost"] = event.saved_cost
    if event.tags:
        attributes["tollway.tags"] = list(event.tags)
    # Present only when message logging is on (already scrubbed of secrets).
    if event.messages is not None:
        attributes["gen_ai.input.messages"] = orjson.dumps(event.messages).decode()
    if event.response is not None:
        output = [{"role": "assistant", "content": event.response}]
        attributes["gen_ai.output.messages"] = orjson.dumps(output).decode()
    return attributes


def _status(failed: bool, description: str | None) -> Status:
    if failed:
        return Status(StatusCode.ERROR, description)
    return Status(StatusCode.UNSET)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _trace_state(header: str | None) -> TraceState | None:
    if not header:
        return None
    return TraceState.from_header([header])


def parse_pairs(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (the OTLP headers / resource attributes format, values URL-encoded)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key:
            pairs[key] = unquote(value.strip())
        elif item.strip():
            # Never the item itself: it may hold a credential.
            log.warning("otel: an entry without '=' in the headers or attributes is ignored")
    return pairs


def traces_endpoint(environ: Mapping[str, str]) -> str:
    """Where spans go: the traces endpoint as given, else a base URL + ``/v1/traces``."""
    exact = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if exact:
        return exact
    base = (
        environ.get("OTEL_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    ).strip() or DEFAULT_ENDPOINT
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def build(
    environ: Mapping[str, str], transport: Transport, settings: Mapping[str, Any]
) -> OtelSink:
    """The ``otel`` callback: spans over OTLP/HTTP protobuf to the configured receiver."""
    exporter = (environ.get("OTEL_EXPORTER") or "").lower()
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).lower()
    if "grpc" in exporter or protocol.startswith("grpc") or exporter == "console":
        log.warning("otel: only OTLP over HTTP (protobuf) is supported; exporting that way")
    headers: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        headers.update(parse_pairs(environ.get(name, "")))
    attributes: dict[str, Any] = {"service.name": "tollway"}
    attributes.update(parse_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    if environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = environ["OTEL_SERVICE_NAME"]
    return OtelSink(
        transport,
        endpoint=traces_endpoint(environ),
        headers={k.lower(): v for k, v in headers.items()},
        resource=Resource(attributes),
        max_batch=_number(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 256),
        flush_interval_s=_number(environ, "OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
    )


def _number(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text:
        log.warning("otel: %s=%r is not a positive integer; using %d", name, text, default)
    return default
