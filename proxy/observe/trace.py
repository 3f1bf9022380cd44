"""W3C trace context (``traceparent`` / ``tracestate``): read from a client, sent upstream.

A leaf (only the standard library), so the request path can use it without pulling in any
sink. Ids are lowercase hex, as on the wire; ``random.getrandbits`` is what the OpenTelemetry
SDK's own id generator uses (ids need to be unique, not secret).
"""

from __future__ import annotations

import random
import re

# version-traceid-parentid-flags; a later version may append fields, version ff is invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = "01"


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """``(trace_id, parent_span_id, flags)`` of a valid header, else None (then ignored)."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def sampled(flags: str) -> bool:
    return bool(int(flags, 16) & 1)


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def traceparent(trace_id: str, span_id: str, flags: str = SAMPLED) -> str:
    return f"00-{trace_id}-{span_id}-{flags}"
