"""The Bedrock Converse dialect: ``chat`` encodes once, the exchange decodes the reply."""

from __future__ import annotations

from functools import partial

from ...model import ChatRequest
from ..base import ChatExchange, Fault, Target
from ..common import dumps
from .errors import fault_from
from .reply import decode_converse
from .request import to_converse
from .stream import StreamDecoder


class BedrockDialect:
    """Outbound: Amazon Bedrock's Converse / ConverseStream (same body for both)."""

    name = "bedrock"

    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        """Encode ``request``; raises ``InvalidRequest`` for what Converse cannot carry.

        ``json_tool`` is the forced JSON-mode tool's name (None when the client asked for no
        ``json_schema``): its input comes back as the answer's text.
        """
        payload, json_tool = to_converse(request)
        return ChatExchange(
            dumps(payload),
            partial(decode_converse, model=target.model, json_tool=json_tool),
            partial(StreamDecoder, target.model, json_tool),
        )

    def fault(self, status: int, body: bytes) -> Fault:
        """An error reply without its ``x-amzn-errortype`` header (see ``fault_from``)."""
        return fault_from(status, body, None)
