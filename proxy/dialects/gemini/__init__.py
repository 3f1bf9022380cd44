"""``gemini/``: Google AI Studio's ``generateContent`` format, both ways.

Outbound: the engine posts ``DIALECT.chat(...).body`` to
``<base>/<model_path(model)>:generateContent`` (or ``:streamGenerateContent?alt=sse``), and
embeddings to ``:batchEmbedContents``.

Gemini streams a function call whole, in one event, and may attach a ``thoughtSignature``
that must come back with the call on the next turn. The signature rides inside the tool
call id the client sees (``<id>__thought__<signature>``, ``SIGNATURE_MARK``) and is restored
from it.

Inbound (a client calling ``generateContent`` / ``streamGenerateContent?alt=sse`` on the
gateway): ``INBOUND`` (``inbound``); the model and whether to stream come from the URL.
"""

from __future__ import annotations

from .dialect import GeminiDialect
from .fault import contract_error, in_band_error
from .inbound import INBOUND, GeminiInbound
from .request import SIGNATURE_MARK, model_path
from .schema import gemini_schema
from .stream import GeminiStreamDecoder

DIALECT = GeminiDialect()

__all__ = [
    "DIALECT",
    "INBOUND",
    "SIGNATURE_MARK",
    "GeminiDialect",
    "GeminiInbound",
    "GeminiStreamDecoder",
    "contract_error",
    "gemini_schema",
    "in_band_error",
    "model_path",
]
