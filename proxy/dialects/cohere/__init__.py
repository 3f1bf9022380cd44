"""``cohere/``: Cohere's v2 Chat API (``POST /v2/chat``) and v2 Embed (``POST /v2/embed``).

request.py   ChatRequest → Cohere chat body
reply.py     Cohere chat reply → ChatReply
stream.py    Cohere stream events → StreamEvents
embed.py     embeddings, both ways
errors.py    Cohere error reply → Fault
wire.py      Cohere's reply shapes, finish reasons and usage (what Cohere bills:
             ``billed_units`` when present, else ``tokens``)
"""

from __future__ import annotations

from .dialect import CohereDialect
from .embed import build_embed_request, translate_embeddings
from .errors import cohere_error
from .reply import translate_response
from .request import build_request
from .stream import CohereStream

DIALECT = CohereDialect()

__all__ = [
    "DIALECT",
    "CohereDialect",
    "CohereStream",
    "build_embed_request",
    "build_request",
    "cohere_error",
    "translate_embeddings",
    "translate_response",
]
