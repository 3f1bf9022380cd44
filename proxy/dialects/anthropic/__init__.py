"""``anthropic``: Anthropic's Messages API, as a provider's format and as a client's.

Outbound (``anthropic/`` deployments): ``DIALECT.chat`` encodes a ``ChatRequest`` as a
Messages request (``request``); its ``Exchange`` decodes a ``message`` body (``reply``) or
the stream's SSE frames (``stream``); ``DIALECT.fault`` reads an error reply (``faults``).
A ``/v1/messages`` request to an ``anthropic/`` deployment skips all of this: ``with_model``
rewrites its bytes, ``native_body_usage`` / ``NativeUsage`` read the untouched reply's
usage (``native``), and a ``MessagesDecoder`` (no JSON mode to undo) decodes its frames
for stages that need events.

Inbound (``POST /v1/messages``): ``DIALECT.decode_request`` (``inbound_request``),
``encode_reply`` / ``stream_encoder`` / ``encode_error`` (``inbound_reply``).
"""

from __future__ import annotations

from functools import partial

import orjson

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest
from ..base import ChatExchange, Fault, Target
from .faults import fault
from .inbound_reply import STOP_REASONS, MessagesEncoder, encode_error, encode_reply
from .inbound_request import decode_request
from .native import NativeUsage, native_body_usage, with_model
from .reply import decode_message
from .request import (
    DEFAULT_MAX_TOKENS,
    JSON_INSTRUCTION,
    JSON_TOOL,
    json_tool_requested,
    messages_request,
)
from .stream import MessagesDecoder

# Client headers an ``anthropic/`` deployment receives as they are (beta features).
FORWARDED_HEADERS = (b"anthropic-beta",)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DIALECT",
    "FORWARDED_HEADERS",
    "JSON_INSTRUCTION",
    "JSON_TOOL",
    "STOP_REASONS",
    "Anthropic",
    "MessagesDecoder",
    "MessagesEncoder",
    "NativeUsage",
    "decode_message",
    "native_body_usage",
    "with_model",
]


class Anthropic:
    """Both faces of the Messages format; stateless."""

    name = "anthropic"

    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        """Encode ``request`` for ``target``; nothing is refused (what Messages cannot
        carry, such as audio parts, is left out)."""
        body = orjson.dumps(messages_request(request, target))
        model, json_tool = target.model, json_tool_requested(request)
        return ChatExchange(
            body,
            partial(decode_message, model=model, json_tool=json_tool),
            partial(MessagesDecoder, model, json_tool),
        )

    def fault(self, status: int, body: bytes) -> Fault:
        return fault(status, body)

    def decode_request(self, body: bytes) -> ChatRequest:
        return decode_request(body)

    def encode_reply(self, reply: ChatReply) -> bytes:
        return encode_reply(reply)

    def stream_encoder(self, request: ChatRequest) -> MessagesEncoder:
        return MessagesEncoder(request.model)

    def encode_error(self, exc: TollwayError) -> bytes:
        return encode_error(exc)


DIALECT = Anthropic()
