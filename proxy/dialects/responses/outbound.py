"""The ``Outbound`` face of the Responses format: the gateway calling an upstream's
``POST {base}/responses`` (LiteLLM's ``openai/responses/<model>`` deployments).

    outbound_request.py  ChatRequest → Responses request JSON
    outbound_reply.py    a ``response`` object → ChatReply (and the shared wire structs)
    outbound_stream.py   Responses SSE frames → StreamEvents

Errors come back in OpenAI's shape, so ``fault`` is OpenAI's.
"""

from __future__ import annotations

from functools import partial

import orjson

from ...model import ChatRequest
from ..base import ChatExchange, Fault, Target
from ..openai import DIALECT as OPENAI
from .outbound_reply import decode_reply
from .outbound_request import responses_request
from .outbound_stream import ResponsesDecoder

__all__ = ["OUTBOUND", "ResponsesDecoder", "ResponsesOutbound"]


class ResponsesOutbound:
    """Outbound: OpenAI's Responses API; stateless."""

    name = "responses"

    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        """Encode ``request``; raises ``InvalidRequest`` for what Responses cannot carry
        (``n`` above 1, audio parts). The exchange decodes a ``response`` body (raising for
        a ``failed`` one) or the stream's SSE frames."""
        return ChatExchange(
            orjson.dumps(responses_request(request, target)),
            partial(decode_reply, model=target.model),
            partial(ResponsesDecoder, target.model),
        )

    def fault(self, status: int, body: bytes) -> Fault:
        """Responses errors are OpenAI's ``{"error": {...}}``."""
        return OPENAI.fault(status, body)


OUTBOUND = ResponsesOutbound()
