"""Token usage as OpenAI reports it, and cheap ways to read it out of upstream bytes.

The decoders name only the fields they need, so msgspec skips the rest of a body without
building it; reading usage from a 100 KB completion costs a scan, not a parse tree.
"""

from __future__ import annotations

import msgspec

from .model import CompletionDetails, PromptDetails, Usage

__all__ = [
    "CompletionDetails",
    "PromptDetails",
    "Usage",
    "decode_chunk_usage",
    "estimate_tokens",
    "usage_from_body",
]


class _UsageEnvelope(msgspec.Struct):
    usage: Usage | None = None


class _ChunkEnvelope(msgspec.Struct):
    usage: Usage | None = None
    choices: list[msgspec.Raw] = []


_body_decoder = msgspec.json.Decoder(_UsageEnvelope)
_chunk_decoder = msgspec.json.Decoder(_ChunkEnvelope)


def usage_from_body(body: bytes) -> Usage | None:
    """The ``usage`` object of a JSON response body, or None when absent or unreadable."""
    try:
        return _body_decoder.decode(body).usage
    except msgspec.DecodeError:
        return None


def decode_chunk_usage(payload: bytes) -> tuple[Usage | None, int]:
    """(usage, number of choices) of one streamed chunk; raises ``msgspec.DecodeError``."""
    chunk = _chunk_decoder.decode(payload)
    return chunk.usage, len(chunk.choices)


def estimate_tokens(text_bytes: int) -> int:
    """A cheap prompt-token estimate from a byte count (about four bytes a token)."""
    return (text_bytes + 3) // 4
