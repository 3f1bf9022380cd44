"""The Bedrock Converse dialect: ``chat`` encodes once, the exchange decodes the reply."""

from __future__ import annotations

from ...errors import UpstreamError
from ...model import ChatReply, ChatRequest
from ..base import Fault, Target
from ..common import dumps, loads_object
from .errors import fault_from
from .reply import from_converse
from .request import to_converse
from .stream import StreamDecoder


class ConverseExchange:
    """One Converse request's bytes, and the decoders for its reply.

    ``json_tool`` is the forced JSON-mode tool's name (None when the client asked for no
    ``json_schema``): its input comes back as the answer's text.
    """

    __slots__ = ("body", "json_tool", "model")

    def __init__(self, body: bytes, model: str, json_tool: str | None) -> None:
        self.body = body
        self.model = model
        self.json_tool = json_tool

    def decode_reply(self, body: bytes) -> ChatReply:
        """A ``Converse`` reply body → ``ChatReply``."""
        reply = loads_object(body)
        if reply is None:
            raise UpstreamError("Bedrock answered with a body that is not a JSON object")
        return from_converse(reply, self.json_tool, self.model)

    def stream_decoder(self) -> StreamDecoder:
        """A decoder for the ``ConverseStream`` event-stream messages of this request."""
        return StreamDecoder(self.model, self.json_tool)


class BedrockDialect:
    """Outbound: Amazon Bedrock's Converse / ConverseStream (same body for both)."""

    name = "bedrock"

    def chat(self, request: ChatRequest, target: Target) -> ConverseExchange:
        """Encode ``request``; raises ``InvalidRequest`` for what Converse cannot carry."""
        payload, json_tool = to_converse(request)
        return ConverseExchange(dumps(payload), target.model, json_tool)

    def fault(self, status: int, body: bytes) -> Fault:
        """An error reply without its ``x-amzn-errortype`` header (see ``fault_from``)."""
        return fault_from(status, body, None)
