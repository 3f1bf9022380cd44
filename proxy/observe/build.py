"""A settled ``Call`` as its ``CallEvent`` (built only when a sink or observer wants it)."""

from __future__ import annotations

import time

from ..pipeline.call import Call
from ..server.logs import scrub_text
from .event import AttemptEvent, CallEvent
from .trace import sampled


def call_event(call: Call, *, log_messages: bool) -> CallEvent:
    principal = call.principal
    request = call.request
    usage = call.usage
    deployment = call.deployment
    now = time.time()
    elapsed = time.perf_counter() - call.started
    error = call.error
    event = CallEvent(
        call_id=call.call_id,
        request_id=call.uid,
        start_time=now - elapsed,
        end_time=now,
        route=request.format if request is not None else "",
        kind=request.kind.value if request is not None else "",
        model_group=request.model if request is not None else None,
        deployment=deployment.label if deployment is not None else None,
        provider=deployment.provider if deployment is not None else None,
        status=_status(call.status),
        status_code=call.status,
        error_type=error.type if error is not None else None,
        error_message=scrub_text(error.message) if error is not None else None,
        key_hash=principal.key_hash if principal is not None and principal.key else None,
        key_alias=principal.key.key_alias if principal is not None and principal.key else None,
        team_id=principal.team.team_id if principal is not None and principal.team else None,
        user_id=principal.user.user_id if principal is not None and principal.user else None,
        end_user=request.end_user() if request is not None else None,
        prompt_tokens=usage.prompt_tokens if usage is not None else 0,
        completion_tokens=usage.completion_tokens if usage is not None else 0,
        cached_tokens=usage.cached_tokens if usage is not None else 0,
        reasoning_tokens=usage.reasoning_tokens if usage is not None else 0,
        cost=call.cost or 0.0,
        cache_hit=call.cache_status == "hit",
        saved_cost=call.saved_cost,
        guardrails=list(call.guardrails),
        retries=call.attempted_retries,
        fallbacks=call.attempted_fallbacks,
        latency_ms=round(elapsed * 1000, 3),
        time_to_first_token_ms=(
            round(call.first_token_s * 1000, 3) if call.first_token_s is not None else None
        ),
        overhead_ms=round(call.overhead_ms(), 3),
        stream=bool(request is not None and request.stream),
        tags=list(principal.key.tags) if principal is not None and principal.key else [],
        metadata=dict(request.metadata() or {}) if request is not None else {},
        trace_id=call.trace_id,
        parent_span_id=call.trace_parent,
        trace_sampled=sampled(call.trace_flags),
        trace_state=call.trace_state,
    )
    if call.attempts:
        # perf_counter times → epoch, relative to the call's own start.
        offset = event.start_time - call.started
        event.attempts = [
            AttemptEvent(
                deployment=a.deployment,
                start_time=a.start + offset,
                end_time=a.end + offset,
                status=a.status,
                span_id=a.span_id,
                error_type=a.error_type,
            )
            for a in call.attempts
        ]
    if log_messages and request is not None and request.kind.value == "chat/completions":
        try:
            chat = request.chat()
        except Exception:
            chat = None
        if chat is not None:
            event.messages = [
                {"role": m.role, "content": scrub_text(m.text())} for m in chat.messages
            ]
        if call.response_text is not None:
            event.response = scrub_text(call.response_text)
    return event


def _status(code: int) -> str:
    if code == 499:
        return "cancelled"
    return "success" if 200 <= code < 400 else "error"
