"""Generic webhook (``generic_api`` / ``generic``): each call as JSON, POSTed in batches.

Configured the way LiteLLM's generic API logger is: ``GENERIC_LOGGER_ENDPOINT`` (required),
``GENERIC_LOGGER_HEADERS`` (``k=v,k2=v2`` as LiteLLM parses it, or a JSON object), and the
body format — ``json_array`` (default: one JSON array per batch), ``ndjson`` (one object a
line) or ``single`` (one POST per call) — from ``callback_settings.<name>.log_format`` as
LiteLLM reads it when the config carries that section, else ``GENERIC_LOGGER_LOG_FORMAT``.

Each record has the shape of LiteLLM's ``StandardLoggingPayload`` (``id``, ``call_type``,
``status``, ``response_cost``, ``prompt_tokens``, ``startTime`` ..., ``metadata.user_api_key_*``,
``error_information``) so receivers written for LiteLLM read it unchanged; what only Tollway
knows is under ``tollway``. ``standard_logging_payload`` is shared with the S3 sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ...config import ConfigError
from ...server.logs import scrub_text
from ...upstream.errors import scrub
from ...upstream.transport import Deadlines, Transport
from ..event import CallEvent
from . import CALL_TYPES

log = logging.getLogger("tollway.observe")

LOG_FORMATS = ("json_array", "ndjson", "single")
DEADLINES = Deadlines(connect=5.0, read=10.0, total=15.0)
_CONTENT_TYPES = {
    "json_array": "application/json",
    "ndjson": "application/x-ndjson",
    "single": "application/json",
}


class WebhookError(Exception):
    """The receiver refused a batch (the bus retries it)."""


class WebhookSink:
    """POSTs ``standard_logging_payload`` records to one endpoint through the gateway's
    ``Transport``."""

    name = "generic_api"
    max_batch = 50
    flush_interval_s = 1.0

    def __init__(
        self,
        transport: Transport,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        log_format: str = "json_array",
        deadlines: Deadlines = DEADLINES,
    ) -> None:
        if log_format not in LOG_FORMATS:
            raise ConfigError(
                f"generic logger log_format {log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
        self.endpoint = endpoint
        self.log_format = log_format
        self._headers = {"content-type": _CONTENT_TYPES[log_format]}
        self._headers.update({k.lower(): v for k, v in (headers or {}).items()})
        self._secrets = tuple(v for v in (headers or {}).values() if len(v) >= 4)
        self._transport = transport
        self._deadlines = deadlines
        # ``single`` sends one POST per call: on a retry, the calls already accepted are
        # skipped (the bus hands the same batch object back).
        self._batch: Sequence[CallEvent] | None = None
        self._sent: set[str] = set()

    async def send(self, batch: Sequence[CallEvent]) -> None:
        if self.log_format == "single":
            await self._send_each(batch)
            return
        records = [standard_logging_payload(event) for event in batch]
        if self.log_format == "ndjson":
            body = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
        else:
            body = orjson.dumps(records)
        await self._post(body)

    async def _send_each(self, batch: Sequence[CallEvent]) -> None:
        if batch is not self._batch:
            self._batch, self._sent = batch, set()
        pending = [e for e in batch if e.call_id not in self._sent]
        results = await asyncio.gather(
            *(self._post(orjson.dumps(standard_logging_payload(e))) for e in pending),
            return_exceptions=True,
        )
        failed: BaseException | None = None
        for event, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or result
            else:
                self._sent.add(event.call_id)
        if failed is not None:
            raise failed
        self._batch, self._sent = None, set()

    async def _post(self, body: bytes) -> None:
        timeout = self._deadlines.total or self._deadlines.read
        async with asyncio.timeout(timeout):
            response = await self._transport.post(
                self.endpoint, body, self._headers, self._deadlines
            )
            raw = await response.read()
        if response.status >= 300:
            raise WebhookError(
                f"generic logger endpoint answered {response.status}: {self._scrub(raw[:200])}"
            )

    def _scrub(self, raw: bytes) -> str:
        return scrub_text(scrub(raw.decode("utf-8", "replace"), self._secrets))

    async def close(self) -> None:
        # The transport belongs to the gateway, which closes it.
        return None


def standard_logging_payload(event: CallEvent) -> dict[str, Any]:
    """One call as LiteLLM's ``StandardLoggingPayload`` names its fields (times in epoch
    seconds), plus Tollway's own details under ``tollway``."""
    error = event.status != "success"
    total = event.prompt_tokens + event.completion_tokens
    first_token = (
        event.start_time + event.time_to_first_token_ms / 1000
        if event.time_to_first_token_ms is not None
        else event.end_time
    )
    model = event.deployment.partition("/")[2] if event.deployment else None
    if not model or model == "*":
        model = event.model_group
    payload: dict[str, Any] = {
        "id": event.call_id,
        "trace_id": event.trace_id or event.call_id,
        "call_type": CALL_TYPES.get(event.kind, event.kind),
        "stream": event.stream,
        "status": "failure" if error else "success",
        "response_cost": event.cost,
        "custom_llm_provider": event.provider,
        "model": model,
        "model_group": event.model_group,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": total,
        "startTime": event.start_time,
        "endTime": event.end_time,
        "completionStartTime": first_token,
        "response_time": round(event.end_time - event.start_time, 6),
        "cache_hit": event.cache_hit,
        "saved_cache_cost": event.saved_cost,
        "request_tags": list(event.tags),
        "end_user": event.end_user or "",
        "metadata": {
            "user_api_key_hash": event.key_hash,
            "user_api_key_alias": event.key_alias,
            "user_api_key_team_id": event.team_id,
            "user_api_key_user_id": event.user_id,
            "user_api_key_end_user_id": event.end_user,
            "requester_metadata": event.metadata,
        },
        "messages": event.messages,
        "response": event.response,
        "error_str": event.error_message if error else None,
        "error_information": (
            {
                "error_code": str(event.status_code),
                "error_class": event.error_type,
                "llm_provider": event.provider,
                "error_message": event.error_message,
            }
            if error
            else None
        ),
        "guardrail_information": event.guardrails or None,
        "hidden_params": {"litellm_overhead_time_ms": event.overhead_ms},
        "tollway": {
            "request_id": event.request_id,
            "route": event.route,
            "kind": event.kind,
            "deployment": event.deployment,
            "status": event.status,
            "status_code": event.status_code,
            "latency_ms": event.latency_ms,
            "time_to_first_token_ms": event.time_to_first_token_ms,
            "cached_tokens": event.cached_tokens,
            "reasoning_tokens": event.reasoning_tokens,
            "retries": event.retries,
            "fallbacks": event.fallbacks,
        },
    }
    return payload


def parse_headers(raw: str | None) -> dict[str, str]:
    """``GENERIC_LOGGER_HEADERS``: a JSON object, or ``k=v`` pairs separated by commas."""
    if not raw or not raw.strip():
        return {}
    text = raw.strip()
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError("GENERIC_LOGGER_HEADERS is not a valid JSON object") from exc
        if not isinstance(parsed, dict):
            raise ConfigError("GENERIC_LOGGER_HEADERS is not a valid JSON object")
        return {str(k): str(v) for k, v in parsed.items()}
    headers: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[key.strip()] = value.strip()
    return headers


def build(
    environ: Mapping[str, str], transport: Transport, settings: Mapping[str, Any]
) -> WebhookSink:
    """The ``generic_api`` / ``generic`` callback (see the module docstring for its keys)."""
    endpoint = environ.get("GENERIC_LOGGER_ENDPOINT")
    if not endpoint:
        raise ConfigError("the generic_api callback needs GENERIC_LOGGER_ENDPOINT")
    headers = parse_headers(environ.get("GENERIC_LOGGER_HEADERS"))
    config = settings.get("config")
    litellm = getattr(config, "litellm_settings", None)
    configured_headers = getattr(litellm, "generic_logger_headers", None)
    if isinstance(configured_headers, dict):
        headers.update({str(k): str(v) for k, v in configured_headers.items()})
    log_format = _configured_log_format(config) or environ.get("GENERIC_LOGGER_LOG_FORMAT")
    return WebhookSink(
        transport, endpoint, headers=headers, log_format=(log_format or "json_array").lower()
    )


def _configured_log_format(config: Any) -> str | None:
    """``callback_settings.{generic_api,generic}.log_format``, where LiteLLM keeps it."""
    sections = getattr(config, "callback_settings", None)
    if not isinstance(sections, Mapping):
        return None
    for name in ("generic_api", "generic"):
        section = sections.get(name)
        if isinstance(section, Mapping) and section.get("log_format"):
            return str(section["log_format"])
    return None
