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
# A tracestate list member (key=value), as the W3C spec (and the OpenTelemetry API) define it.
_TRACESTATE_MEMBER = re.compile(
    r"([a-z][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13})"
    r"=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)
_TRACESTATE_MAX_MEMBERS = 32


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


def normalize_tracestate(header: str | None) -> str:
    """A ``tracestate`` header as a span records it: its members re-joined with ``,`` (blanks
    and empty members dropped), or ``""`` when any member is malformed or repeated, or there
    are more than 32 (the OpenTelemetry API's ``TraceState.from_header`` rules)."""
    if not header:
        return ""
    members: dict[str, str] = {}
    for item in header.split(","):
        member = item.strip(" \t")
        if not member:
            continue
        found = _TRACESTATE_MEMBER.fullmatch(member)
        if found is None:
            return ""
        key, value = found.groups()
        if key in members:
            return ""
        members[key] = value
    if len(members) > _TRACESTATE_MAX_MEMBERS:
        return ""
    return ",".join(f"{key}={value}" for key, value in members.items())
