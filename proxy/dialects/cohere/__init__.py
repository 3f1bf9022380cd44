"""``cohere/``: Cohere's v2 Chat API (``POST /v2/chat``) and v2 Embed (``POST /v2/embed``).

Outbound (``DIALECT``): the gateway calls Cohere. Inbound (``INBOUND``): a client speaks
Cohere's v2 chat to the gateway.

request.py   ChatRequest → Cohere chat body
reply.py     Cohere chat reply → ChatReply
stream.py    Cohere stream events → StreamEvents
embed.py     embeddings, both ways
errors.py    Cohere error reply → Fault
wire.py      Cohere's reply shapes, finish reasons and usage (what Cohere bills:
             ``billed_units`` when present, else ``tokens``)
inbound.py   the inbound face: inbound_request.py (a v2 chat body → ChatRequest) and
             inbound_reply.py (ChatReply / events / errors → Cohere's shapes)
"""

from __future__ import annotations

from .dialect import CohereDialect
from .embed import build_embed_request, translate_embeddings
from .errors import cohere_error
from .inbound import INBOUND, CohereInbound
from .reply import translate_response
from .request import build_request
from .stream import CohereStream

DIALECT = CohereDialect()

__all__ = [
    "DIALECT",
    "INBOUND",
    "CohereDialect",
    "CohereInbound",
    "CohereStream",
    "build_embed_request",
    "build_request",
    "cohere_error",
    "translate_embeddings",
    "translate_response",
]
