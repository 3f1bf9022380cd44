"""OpenTelemetry: one span per call (GenAI semantic conventions), one child per upstream attempt.

Spans are made from the ``CallEvent`` in the sink's worker, off the request path, with the
call's own start and end times, built directly as the OTLP protobuf messages (one
``ExportTraceServiceRequest`` a batch; protobuf's C backend does the encoding) and POSTed to
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
import functools
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias
from urllib.parse import unquote

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

from ...upstream.transport import Deadlines, Transport
from ..event import CallEvent
from ..trace import normalize_tracestate

log = logging.getLogger("tollway.observe")

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
SCOPE = "tollway"
# OTLP/HTTP: these statuses may succeed later; anything else will not.
RETRYABLE = frozenset({429, 502, 503, 504})
# Events encoded between two yields to the loop: ~15-30 µs of CPU each, so a slice stays
# under a millisecond (the loop serves requests in between).
ENCODE_SLICE = 32

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

CLIENT = Span.SpanKind.SPAN_KIND_CLIENT
ERROR = Status.StatusCode.STATUS_CODE_ERROR
# Every span says whether its parent is remote: only a call span under a client's one is.
LOCAL_PARENT = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
REMOTE_PARENT = LOCAL_PARENT | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

# protobuf ships no types (its repeated fields are Any to mypy): a span's or a resource's
# ``KeyValue`` list, and a ``ScopeSpans``' spans.
Attributes: TypeAlias = Any
Spans: TypeAlias = Any


class OtelSink:
    """Exports each batch of events as one OTLP/HTTP protobuf request."""

    name = "otel"

    def __init__(
        self,
        transport: Transport,
        *,
        endpoint: str,
        headers: Mapping[str, str],
        resource: Mapping[str, Any],
        max_batch: int = 256,
        flush_interval_s: float = 1.0,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.transport = transport
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.endpoint = endpoint
        self.headers = {**headers, "content-type": PROTOBUF}
        self.resource = Resource()
        for key, value in resource.items():
            _put(self.resource.attributes, key, value)
        self.deadlines = deadlines or Deadlines(connect=5.0, read=10.0, total=10.0)

    async def send(self, batch: Sequence[CallEvent]) -> None:
        sampled = [event for event in batch if event.trace_sampled]
        if not sampled:
            return
        # Encoding is ~15-30 µs of CPU an event, ~3 of them the final serialization (under a
        # millisecond for a full batch of 256): done on the loop, a slice of events at a time.
        # A thread would not run it beside the loop (it holds the GIL throughout) and could keep
        # the loop waiting for a whole switch interval (5 ms).
        request, spans = self.request()
        for first in range(0, len(sampled), ENCODE_SLICE):
            if first:
                await asyncio.sleep(0)
            for event in sampled[first : first + ENCODE_SLICE]:
                self.add_spans(spans, event)
        body = bytes(request.SerializeToString())
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
        request, spans = self.request()
        for event in events:
            self.add_spans(spans, event)
        return bytes(request.SerializeToString())

    def request(self) -> tuple[ExportTraceServiceRequest, Spans]:
        """An empty request for this resource and scope, and its (repeated) spans field."""
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.CopyFrom(self.resource)
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = SCOPE
        return request, scope_spans.spans

    async def close(self) -> None:
        """The transport is the gateway's; its owner closes it."""

    def add_spans(self, spans: Spans, event: CallEvent) -> None:
        """The call's span and one child per upstream attempt, appended to ``spans``."""
        trace_id = _trace_id(event.trace_id)
        state = normalize_tracestate(event.trace_state)
        span_id = (random.getrandbits(64) or 1).to_bytes(8, "big")
        # A call refused before its body was read has no operation or model.
        operation = OPERATIONS.get(event.kind, event.kind) or "tollway.call"
        # Fields set one by one: cheaper than keyword arguments.
        call = spans.add()
        call.trace_id = trace_id
        call.span_id = span_id
        call.trace_state = state
        call.name = f"{operation} {event.model_group}" if event.model_group else operation
        call.kind = CLIENT
        call.start_time_unix_nano = int(event.start_time * 1e9)
        call.end_time_unix_nano = int(event.end_time * 1e9)
        if event.parent_span_id is None:
            call.flags = LOCAL_PARENT
        else:
            call.parent_span_id = int(event.parent_span_id, 16).to_bytes(8, "big")
            call.flags = REMOTE_PARENT
        _call_attributes(call, event, operation)
        _set_status(call.status, event.status != "success", event.error_message)
        for number, attempt in enumerate(event.attempts, 1):
            span = spans.add()
            span.trace_id = trace_id
            span.span_id = int(attempt.span_id, 16).to_bytes(8, "big")
            span.parent_span_id = span_id
            span.trace_state = state
            span.start_time_unix_nano = int(attempt.start_time * 1e9)
            span.end_time_unix_nano = int(attempt.end_time * 1e9)
            span.MergeFromString(
                _attempt_span(
                    operation, attempt.deployment, number, attempt.status, attempt.error_type
                )
            )


def _trace_id(given: str | None) -> bytes:
    if given:
        return int(given, 16).to_bytes(16, "big")
    # What ``new_trace_id()`` would give, as bytes.
    return (random.getrandbits(128) or 1).to_bytes(16, "big")


# The attributes that take few values (models, statuses, keys' aliases) are encoded once and
# merged into each span as bytes (a span's attributes are a repeated field: merging appends,
# in order); only those unique to a call (ids, tokens, costs, times) are set one by one.
# ``typed``: ``True`` and ``1`` (a bool and an int attribute) are different entries.
_memo = functools.lru_cache(maxsize=1024, typed=True)


@_memo
def _attempt_span(
    operation: str, deployment: str, number: int, status: int, error_type: str | None
) -> bytes:
    """An attempt span's name, kind, flags, attributes and status, serialized."""
    provider, _, model = deployment.partition("/")
    provider = PROVIDERS.get(provider, provider)
    span = Span(name=f"{operation} {model}", kind=CLIENT, flags=LOCAL_PARENT)
    attributes = span.attributes
    _put(attributes, "gen_ai.operation.name", operation)
    _put(attributes, "gen_ai.provider.name", provider)
    _put(attributes, "gen_ai.system", provider)
    _put(attributes, "gen_ai.request.model", model)
    _put(attributes, "tollway.deployment", deployment)
    _put(attributes, "tollway.attempt", number)
    if status:
        _put(attributes, "http.response.status_code", status)
    failed = error_type is not None
    if failed:
        _put(attributes, "error.type", error_type)
    _set_status(span.status, failed, error_type)
    return bytes(span.SerializeToString())


@_memo
def _model_attributes(
    kind: str, operation: str, provider: str | None, model: str | None, deployment: str | None
) -> bytes:
    attributes = (span := Span()).attributes
    if kind:
        _put(attributes, "gen_ai.operation.name", operation)
    if provider is not None:
        provider = PROVIDERS.get(provider, provider)
        _put(attributes, "gen_ai.provider.name", provider)
        _put(attributes, "gen_ai.system", provider)
    if model is not None:
        _put(attributes, "gen_ai.request.model", model)
    if deployment is not None:
        _put(attributes, "gen_ai.response.model", deployment.partition("/")[2])
        _put(attributes, "tollway.deployment", deployment)
    return bytes(span.SerializeToString())


@_memo
def _error_attributes(status: str, error_type: str | None, status_code: int) -> bytes:
    attributes = (span := Span()).attributes
    if status != "success":
        _put(attributes, "error.type", error_type or str(status_code))
    if status_code:
        _put(attributes, "http.response.status_code", status_code)
    return bytes(span.SerializeToString())


@_memo
def _pairs(*pairs: Any) -> bytes:
    """``key, value, key2, value2…`` as attributes."""
    attributes = (span := Span()).attributes
    for index in range(0, len(pairs), 2):
        _put(attributes, pairs[index], pairs[index + 1])
    return bytes(span.SerializeToString())


def _call_attributes(span: Span, event: CallEvent, operation: str) -> None:
    merge = span.MergeFromString
    attributes = span.attributes
    merge(
        _model_attributes(
            event.kind, operation, event.provider, event.model_group, event.deployment
        )
    )
    if event.prompt_tokens or event.completion_tokens:
        _put(attributes, "gen_ai.usage.input_tokens", event.prompt_tokens)
        _put(attributes, "gen_ai.usage.output_tokens", event.completion_tokens)
    if event.cached_tokens:
        _put(attributes, "gen_ai.usage.cache_read.input_tokens", event.cached_tokens)
    merge(_error_attributes(event.status, event.error_type, event.status_code))
    _put(attributes, "tollway.call_id", event.call_id)
    merge(_pairs("tollway.route", event.route, "tollway.status", event.status))
    _put(attributes, "tollway.cost", event.cost)
    merge(
        _pairs(
            "tollway.cache_hit",
            event.cache_hit,
            "tollway.retries",
            event.retries,
            "tollway.fallbacks",
            event.fallbacks,
        )
    )
    _put(attributes, "tollway.latency_ms", event.latency_ms)
    _put(attributes, "tollway.overhead_ms", event.overhead_ms)
    # The key's alias names it; the key itself (and its hash) never leaves the gateway.
    if event.key_alias is None and event.team_id is None:
        merge(_pairs("tollway.stream", event.stream))
    elif event.team_id is None:
        merge(_pairs("tollway.stream", event.stream, "tollway.key_alias", event.key_alias))
    elif event.key_alias is None:
        merge(_pairs("tollway.stream", event.stream, "tollway.team_id", event.team_id))
    else:
        merge(
            _pairs(
                "tollway.stream",
                event.stream,
                "tollway.key_alias",
                event.key_alias,
                "tollway.team_id",
                event.team_id,
            )
        )
    if event.user_id is not None:
        _put(attributes, "tollway.user_id", event.user_id)
    if event.end_user is not None:
        _put(attributes, "tollway.end_user", event.end_user)
    if event.time_to_first_token_ms is not None:
        _put(attributes, "tollway.time_to_first_token_ms", event.time_to_first_token_ms)
    if event.saved_cost:
        _put(attributes, "tollway.saved_cost", event.saved_cost)
    if event.tags:
        _put(attributes, "tollway.tags", event.tags)
    # Present only when message logging is on (already scrubbed of secrets).
    if event.messages is not None:
        _put(attributes, "gen_ai.input.messages", orjson.dumps(event.messages).decode())
    if event.response is not None:
        output = [{"role": "assistant", "content": event.response}]
        _put(attributes, "gen_ai.output.messages", orjson.dumps(output).decode())


def _put(attributes: Attributes, key: str, value: Any) -> None:
    """One attribute, encoded as the OTLP exporter encodes it."""
    attribute = attributes.add()
    attribute.key = key
    field = _FIELDS.get(type(value))
    if field is None:
        _set_value(attribute.value, value)
    else:
        setattr(attribute.value, field, value)


# The exact types of the common values → their ``AnyValue`` field.
_FIELDS = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}


def _set_value(out: AnyValue, value: Any) -> None:
    # bool before int: a bool is an int.
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, Sequence):
        values = out.array_value.values
        for item in value:
            _set_value(values.add(), item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _put(out.kvlist_value.values, str(key), item)
    else:
        # None (never sent: every optional attribute is checked first) is an empty value.
        out.SetInParent()


def _set_status(status: Status, failed: bool, description: str | None) -> None:
    if failed:
        status.code = ERROR
        if description and isinstance(description, str):
            status.message = description
    else:
        # An unset status is still present in the span (as the SDK exporter sends it).
        status.SetInParent()


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
        resource=attributes,
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
