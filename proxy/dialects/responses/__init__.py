"""The OpenAI Responses format (``POST /v1/responses``), both ways.

A Responses request is mapped onto a ``ChatRequest`` (``request``), served like any chat
call by any provider, and the reply mapped back to a ``response`` object (``reply``) or, when
streaming, to the Responses SSE events (``stream``). A ``response`` echoes its request's
fields (``shell``): use ``encode_reply_for(request, reply)`` and ``stream_encoder(request)``
with the request ``decode_request`` returned.

Outbound (``openai/responses/<model>`` deployments): ``OUTBOUND`` (``outbound``) encodes a
``ChatRequest`` as a Responses request and decodes the ``response`` or its stream.
"""

from __future__ import annotations

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest
from .outbound import OUTBOUND, ResponsesOutbound
from .reply import encode_reply, encode_reply_for
from .request import decode_request
from .shell import ResponsesChatRequest, ResponseShell, shell_for
from .stream import ResponseEvents

__all__ = [
    "DIALECT",
    "OUTBOUND",
    "ResponseEvents",
    "ResponseShell",
    "ResponsesChatRequest",
    "ResponsesDialect",
    "ResponsesOutbound",
    "shell_for",
]


class ResponsesDialect:
    """The ``Inbound`` face of the Responses format (stateless)."""

    name = "responses"

    def decode_request(self, body: bytes) -> ChatRequest:
        """Validate and map a Responses body; raises ``InvalidRequest`` naming the field.

        The result is a ``ResponsesChatRequest``: pass this same object to
        ``encode_reply_for`` / ``stream_encoder`` so the response echoes the request exactly.
        """
        return decode_request(body)

    def encode_reply(self, reply: ChatReply) -> bytes:
        """A ``response`` object with the echoed request fields at their defaults; prefer
        ``encode_reply_for`` when the request is at hand."""
        return encode_reply(reply)

    def encode_reply_for(self, request: ChatRequest, reply: ChatReply) -> bytes:
        """The ``response`` object answering ``request``."""
        return encode_reply_for(request, reply)

    def stream_encoder(self, request: ChatRequest) -> ResponseEvents:
        """The Responses events of one streamed response to ``request``."""
        return ResponseEvents(shell_for(request))

    def encode_error(self, exc: TollwayError) -> bytes:
        # Responses clients read OpenAI's error shape: the contract's own body.
        return exc.body()


DIALECT = ResponsesDialect()
