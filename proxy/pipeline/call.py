"""``Call``: the state of one inference request as it moves through the stages.

A leaf: it imports only leaf types (the parsed request, the deployment, usage), never a
stage. Stages write the fields they own: read/authenticate (``principal``), parse
(``request``), routing (``deployment``, ``price``, retry and fallback counts, the complexity
tier), admit (``reservation``), respond (``status``, ``headers_sent``, ``relayed_events``,
``usage``), settle (``cost``, ``settled``).
"""

from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

from ..auth import Principal
from ..errors import TollwayError
from ..ledger.memory import Reservation
from ..model import Usage
from ..pricing import ModelPrice
from ..request import ParsedRequest
from ..upstream.deployment import Deployment

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class Attempt(NamedTuple):
    """One upstream attempt (recorded only when tracing): times are ``perf_counter`` seconds;
    ``status`` is what the upstream answered (0: no answer), ``error_type`` set on failure."""

    deployment: str
    start: float
    end: float
    status: int
    span_id: str
    error_type: str | None = None


class Call:
    __slots__ = (
        "admitted_model",
        "attempted_fallbacks",
        "attempted_retries",
        "attempts",
        "cache_control",
        "cache_key",
        "cache_similarity",
        "cache_status",
        "call_id",
        "complexity_tier",
        "cost",
        "deployment",
        "disconnected",
        "echo_request_id",
        "end_user",
        "error",
        "failed_attempts",
        "first_token_s",
        "guardrails",
        "guardrails_selected",
        "headers_sent",
        "max_retries",
        "output_cap",
        "price",
        "principal",
        "reached_upstream",
        "relayed_events",
        "request",
        "reservation",
        "response_bytes",
        "response_id",
        "response_text",
        "saved_cost",
        "settled",
        "started",
        "status",
        "tags_header",
        "timeout_header",
        "timeout_s",
        "trace_flags",
        "trace_id",
        "trace_parent",
        "trace_state",
        "uid",
        "upstream_s",
        "usage",
    )

    def __init__(self, uid: str, call_id: str, echo_request_id: bool) -> None:
        self.uid = uid
        self.call_id = call_id
        self.echo_request_id = echo_request_id
        self.started = time.perf_counter()
        self.upstream_s = 0.0
        self.request: ParsedRequest | None = None
        self.principal: Principal | None = None
        self.deployment: Deployment | None = None
        self.price: ModelPrice | None = None
        self.reservation: Reservation | None = None
        self.usage: Usage | None = None
        self.cost: float | None = None
        self.status = 0
        self.relayed_events = 0
        self.response_bytes = 0
        # The reply's own id (``chatcmpl-...``), for the spend log (LiteLLM's request_id).
        self.response_id: str | None = None
        # The retries the serving deployment allowed (x-litellm-max-retries); the request's
        # ``x-litellm-timeout`` header and the timeout the last attempt had (x-litellm-timeout).
        self.max_retries: int | None = None
        self.timeout_header: str | None = None
        self.timeout_s: float | None = None
        self.reached_upstream = False
        self.settled = False
        self.headers_sent = False
        self.disconnected = False
        self.attempted_retries = 0
        self.attempted_fallbacks = 0
        self.failed_attempts = 0
        self.complexity_tier: str | None = None
        # Guardrails: what ran (name, direction, action, reason, ms), and which were chosen.
        self.guardrails: list[dict[str, Any]] = []
        self.guardrails_selected: tuple[Any, ...] | None = None
        # Cache: the request's Cache-Control header; hit | miss | bypass; the key; the
        # similarity of a semantic hit; what a hit saved.
        self.cache_control: str | None = None
        self.cache_status: str | None = None
        self.cache_key: str | None = None
        self.cache_similarity: float | None = None
        self.saved_cost = 0.0
        # Observability: the error answered, time to the first byte sent, the reply's text
        # (kept only when messages are logged), the W3C trace id.
        self.error: TollwayError | None = None
        self.first_token_s: float | None = None
        self.response_text: str | None = None
        self.trace_id: str | None = None
        # A client's W3C trace context (its span id, flags, tracestate), continued; and the
        # upstream attempts, recorded only when a tracing sink is configured.
        self.trace_parent: str | None = None
        self.trace_flags = "01"
        self.trace_state: str | None = None
        self.attempts: list[Attempt] | None = None
        self.tags_header: str | None = None
        # The end user an ``x-litellm-end-user-id`` / ``x-litellm-customer-id`` header named
        # (else the body's ``user`` field names it); the output limit a budget capped the
        # call to (``x-tollway-max-tokens-capped``), and the upstream model it was admitted for.
        self.end_user: str | None = None
        self.output_cap: int | None = None
        self.admitted_model: str | None = None

    @classmethod
    def start(cls, uid: str, request_id: bytes | None) -> Call:
        """A new call; the client's ``x-request-id`` becomes its call id when well-formed."""
        if request_id is not None:
            text = request_id.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return cls(uid, text, echo_request_id=True)
        return cls(uid, uid, echo_request_id=False)

    def overhead_ms(self) -> float:
        return (time.perf_counter() - self.started - self.upstream_s) * 1000
