"""``CallEvent``: one typed record per settled call, what every sink receives."""

from __future__ import annotations

from typing import Any

import msgspec


class AttemptEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One upstream attempt (recorded only when a tracing sink is configured)."""

    deployment: str  # provider/model
    start_time: float  # epoch seconds
    end_time: float
    status: int  # the upstream's HTTP status; 0 when it never answered
    span_id: str  # the W3C parent id the upstream was sent
    error_type: str | None = None  # set when the attempt failed


class CallEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    call_id: str
    request_id: str
    start_time: float  # epoch seconds
    end_time: float
    route: str  # the inbound format: openai, anthropic, responses, gemini, cohere, bedrock
    kind: str  # chat/completions, completions, embeddings
    model_group: str | None = None
    deployment: str | None = None  # provider/model actually called
    provider: str | None = None
    status: str = "success"  # success | error | cancelled
    status_code: int = 0
    error_type: str | None = None
    error_message: str | None = None  # scrubbed
    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    cache_hit: bool = False
    saved_cost: float = 0.0
    guardrails: list[dict[str, Any]] = msgspec.field(default_factory=list)
    retries: int = 0
    fallbacks: int = 0
    latency_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    overhead_ms: float = 0.0
    stream: bool = False
    tags: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # Only when ``litellm_settings.turn_off_message_logging`` is false; secrets scrubbed.
    messages: list[dict[str, Any]] | None = None
    response: str | None = None
    trace_id: str | None = None  # W3C trace id when the call carried or started a trace
    # The client's W3C context when it sent one: its span id, sampled flag, tracestate.
    parent_span_id: str | None = None
    trace_sampled: bool = True
    trace_state: str | None = None
    attempts: list[AttemptEvent] = msgspec.field(default_factory=list)
