"""The ``Inbound`` face of Bedrock's Converse API: clients that call the gateway with
``POST /model/{modelId}/converse`` (a JSON reply) or ``/converse-stream`` (a binary AWS
event stream, content type ``STREAM_CONTENT_TYPE``).

    inbound_request.py  Converse JSON (+ the URL's model id and action) → ChatRequest
    inbound_reply.py    ChatReply → Converse JSON; events → event-stream messages; errors

The pipeline answers errors with ``encode_error``'s body and the header
``x-amzn-errortype: error_type(exc.status, exc.type)``.
"""

from __future__ import annotations

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest
from .inbound_reply import (
    STREAM_CONTENT_TYPE,
    ConverseStreamEncoder,
    encode_error,
    encode_reply,
    error_type,
)
from .inbound_request import decode_request

__all__ = [
    "INBOUND",
    "STREAM_CONTENT_TYPE",
    "BedrockInbound",
    "ConverseStreamEncoder",
    "error_type",
]


class BedrockInbound:
    """Converse / ConverseStream as a client's format; stateless."""

    name = "bedrock"

    def decode_request(self, body: bytes, model: str = "", stream: bool = False) -> ChatRequest:
        """Validate and decode a Converse body; ``model`` is the URL's ``{modelId}``
        (percent-decoded) and ``stream`` whether the action was ``converse-stream``. Raises
        ``InvalidRequest`` naming the bad field (``modelId`` when ``model`` is empty)."""
        return decode_request(body, model, stream)

    def encode_reply(self, reply: ChatReply) -> bytes:
        return encode_reply(reply)

    def stream_encoder(self, request: ChatRequest) -> ConverseStreamEncoder:
        return ConverseStreamEncoder()

    def encode_error(self, exc: TollwayError) -> bytes:
        return encode_error(exc)

    def error_type(self, exc: TollwayError) -> str:
        """The ``x-amzn-errortype`` header's value for ``exc``."""
        return error_type(exc.status, exc.type)


INBOUND = BedrockInbound()
