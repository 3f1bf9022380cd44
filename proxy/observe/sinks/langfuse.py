"""Langfuse: one trace and one generation per call, through the public ingestion API.

``POST {LANGFUSE_HOST}/api/public/ingestion`` with HTTP Basic auth (public key : secret key)
and ``{"batch": [events]}``; Langfuse answers 207 with a status per event, so a batch that
"succeeded" can still carry rejected events: those are read, counted (``rejected``) and
logged, not retried (a schema error does not heal by resending). A non-2xx answer for the
whole batch raises, and the bus retries it.

Request metadata is mapped the way LiteLLM's Langfuse logger maps it:
``trace_id`` (the trace's id, so calls sharing it land in one trace), ``existing_trace_id``
(attach to a trace without touching it), ``session_id``, ``trace_user_id`` (else the end
user), ``trace_name``/``trace_version``/``trace_release``/``trace_metadata``,
``generation_name`` (else ``litellm:{key_alias}`` or ``litellm-{call_type}``),
``generation_id``, ``tags``, ``mask_input``/``mask_output``; what is left goes to the
generation's metadata.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ...config import ConfigError
from ...server.logs import scrub_text
from ...upstream.errors import scrub
from ...upstream.transport import Deadlines, Transport
from ..event import CallEvent
from . import CALL_TYPES

log = logging.getLogger("tollway.observe")

DEFAULT_HOST = "https://cloud.langfuse.com"
INGESTION_PATH = "/api/public/ingestion"
DEADLINES = Deadlines(connect=5.0, read=10.0, total=15.0)
REDACTED = "redacted-by-litellm"  # what LiteLLM writes for mask_input / mask_output

# Metadata keys that steer the mapping (or are LiteLLM internals) and are not logged as-is.
_CONTROL_KEYS = frozenset(
    {
        "headers",
        "endpoint",
        "caching_groups",
        "previous_models",
        "update_trace_keys",
        "debug_langfuse",
        "mask_input",
        "mask_output",
    }
)


class LangfuseError(Exception):
    """The ingestion endpoint refused a whole batch (the bus retries it)."""


class LangfuseSink:
    """Sends ``trace-create`` + ``generation-create`` events, batched, via the gateway's
    ``Transport``."""

    name = "langfuse"
    max_batch = 50
    flush_interval_s = 1.0

    def __init__(
        self,
        transport: Transport,
        *,
        public_key: str,
        secret_key: str,
        host: str = DEFAULT_HOST,
        deadlines: Deadlines = DEADLINES,
    ) -> None:
        self.url = host.rstrip("/") + INGESTION_PATH
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        self._headers = {
            "authorization": f"Basic {token}",
            "content-type": "application/json",
        }
        self._secrets = tuple(s for s in (public_key, secret_key, token) if len(s) >= 4)
        self._transport = transport
        self._deadlines = deadlines
        self.accepted = 0  # events Langfuse answered with a success status
        self.rejected = 0  # events Langfuse answered with a per-event error

    async def send(self, batch: Sequence[CallEvent]) -> None:
        events: list[dict[str, Any]] = []
        for event in batch:
            events.extend(ingestion_events(event))
        body = orjson.dumps({"batch": events})
        timeout = self._deadlines.total or self._deadlines.read
        async with asyncio.timeout(timeout):
            response = await self._transport.post(self.url, body, self._headers, self._deadlines)
            raw = await response.read()
        if response.status >= 300:
            raise LangfuseError(
                f"langfuse ingestion answered {response.status}: {self._scrub(raw[:300])}"
            )
        self._count(raw, len(events))

    def _count(self, raw: bytes, sent: int) -> None:
        try:
            answer = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        successes = answer.get("successes")
        errors = answer.get("errors")
        if not isinstance(errors, list):
            errors = []
        self.rejected += len(errors)
        self.accepted += len(successes) if isinstance(successes, list) else sent - len(errors)
        for error in errors[:5]:
            if isinstance(error, dict):
                log.warning(
                    "langfuse rejected event %s (%s): %s",
                    error.get("id"),
                    error.get("status"),
                    self._scrub(str(error.get("message") or error.get("error") or "")[:300]),
                )
        if len(errors) > 5:
            log.warning("langfuse rejected %d more events of this batch", len(errors) - 5)

    def _scrub(self, text: bytes | str) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return scrub_text(scrub(text, self._secrets))

    async def close(self) -> None:
        # The transport belongs to the gateway, which closes it.
        return None


def ingestion_events(event: CallEvent) -> list[dict[str, Any]]:
    """The ingestion events for one call: a ``trace-create`` (unless the call attaches to an
    ``existing_trace_id``) and a ``generation-create``."""
    meta = {k: v for k, v in event.metadata.items() if k not in _CONTROL_KEYS}
    mask_input = _truthy(event.metadata.get("mask_input"))
    mask_output = _truthy(event.metadata.get("mask_output"))
    call_type = CALL_TYPES.get(event.kind, event.kind or "completion")
    error = event.status != "success"

    existing_trace_id = _text(meta.pop("existing_trace_id", None))
    trace_id = existing_trace_id or _text(meta.pop("trace_id", None)) or event.call_id
    session_id = _text(meta.pop("session_id", None))
    tags = _tags(event.tags, meta.pop("tags", None))
    generation_name = _text(meta.pop("generation_name", None)) or (
        f"litellm:{event.key_alias}" if event.key_alias else f"litellm-{call_type}"
    )
    generation_id = _text(meta.pop("generation_id", None)) or event.call_id
    version = _text(meta.pop("version", None))
    # Every other ``trace_*`` key names a field of the trace (LiteLLM's convention).
    trace_fields = {
        key[len("trace_") :]: meta.pop(key) for key in list(meta) if key[:6] == "trace_"
    }

    started = _iso(event.start_time)
    input_: Any = None
    if event.messages is not None:
        input_ = REDACTED if mask_input else event.messages
    output: Any = None
    if event.response is not None and not error:
        output = REDACTED if mask_output else {"role": "assistant", "content": event.response}

    events: list[dict[str, Any]] = []
    if existing_trace_id is None:
        trace: dict[str, Any] = {
            "id": trace_id,
            "timestamp": started,
            "name": _text(trace_fields.pop("name", None)) or f"litellm-{call_type}",
            "userId": _text(trace_fields.pop("user_id", None)) or event.end_user,
            "sessionId": session_id,
            "version": _text(trace_fields.pop("version", None)) or version,
            "release": _text(trace_fields.pop("release", None)),
            "tags": tags,
        }
        trace_metadata = trace_fields.pop("metadata", None)
        if isinstance(trace_metadata, dict):
            trace["metadata"] = trace_metadata
        if input_ is not None:
            trace["input"] = input_
        if output is not None:
            trace["output"] = output
        events.append(_envelope("trace-create", _compact(trace)))

    total = event.prompt_tokens + event.completion_tokens
    generation: dict[str, Any] = {
        "id": generation_id,
        "traceId": trace_id,
        "name": generation_name,
        "startTime": started,
        "endTime": _iso(event.end_time),
        "model": _model(event),
        "usage": {
            "input": event.prompt_tokens,
            "output": event.completion_tokens,
            "total": total,
            "unit": "TOKENS",
            "totalCost": event.cost,
        },
        "usageDetails": _usage_details(event, total),
        "costDetails": {"total": event.cost},
        "level": "ERROR" if error else "DEFAULT",
        "version": version,
        "metadata": {
            **meta,
            "litellm_response_cost": event.cost,
            "cache_hit": event.cache_hit,
            "model_group": event.model_group,
            "deployment": event.deployment,
            "call_id": event.call_id,
            "request_id": event.request_id,
        },
    }
    if event.time_to_first_token_ms is not None:
        generation["completionStartTime"] = _iso(
            event.start_time + event.time_to_first_token_ms / 1000
        )
    if error:
        generation["statusMessage"] = event.error_message or event.error_type or event.status
    if input_ is not None:
        generation["input"] = input_
    if output is not None:
        generation["output"] = output
    events.append(_envelope("generation-create", _compact(generation)))
    return events


def build(
    environ: Mapping[str, str], transport: Transport, settings: Mapping[str, Any]
) -> LangfuseSink:
    """The ``langfuse`` callback: keys from ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY``,
    the server from ``LANGFUSE_HOST`` (Langfuse Cloud by default)."""
    public_key = environ.get("LANGFUSE_PUBLIC_KEY")
    secret_key = environ.get("LANGFUSE_SECRET_KEY")
    if not public_key or not secret_key:
        raise ConfigError("the langfuse callback needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    host = environ.get("LANGFUSE_HOST") or DEFAULT_HOST
    if "://" not in host:
        host = "https://" + host
    return LangfuseSink(transport, public_key=public_key, secret_key=secret_key, host=host)


def _envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": _iso(datetime.now(UTC).timestamp()),
        "type": kind,
        "body": body,
    }


def _usage_details(event: CallEvent, total: int) -> dict[str, int]:
    details = {"input": event.prompt_tokens, "output": event.completion_tokens, "total": total}
    if event.cached_tokens:
        details["cache_read_input_tokens"] = event.cached_tokens
    if event.reasoning_tokens:
        details["reasoning_tokens"] = event.reasoning_tokens
    return details


def _model(event: CallEvent) -> str | None:
    """The provider's model name, as LiteLLM logs it (``gpt-4o``, not ``openai/gpt-4o``)."""
    if event.deployment:
        provider, _, model = event.deployment.partition("/")
        if model and model != "*":
            return model
        if not model:
            return provider
    group = event.model_group
    if group and event.provider and group.startswith(event.provider + "/"):
        return group[len(event.provider) + 1 :]
    return group


def _tags(key_tags: Sequence[str], requested: Any) -> list[str]:
    tags = list(key_tags)
    if isinstance(requested, list | tuple):
        tags += [str(t) for t in requested]
    elif isinstance(requested, str) and requested:
        tags.append(requested)
    return list(dict.fromkeys(tags))


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}
