"""``bedrock/``: Amazon Bedrock's Converse and ConverseStream APIs, both ways.

Outbound: ``DIALECT.chat`` encodes the Converse body (the same for ``/converse`` and
``/converse-stream``); the engine builds the URL from ``model_id(target.model)``, signs
the request, frames the binary event stream into ``Frame``\\ s and reads the error name from
the ``x-amzn-errortype`` header for ``fault_from``.

    request.py  ChatRequest → Converse JSON (JSON mode via a forced tool)
    reply.py    Converse JSON → ChatReply
    stream.py   ConverseStream frames → StreamEvents
    errors.py   error replies and stream exceptions → Fault → the contract's errors

Inbound (a client calling ``/model/{modelId}/converse`` or ``/converse-stream`` on the
gateway): ``INBOUND``, a ``BedrockInbound`` (``inbound``).
"""

from __future__ import annotations

from .dialect import BedrockDialect
from .errors import ERROR_STATUS, error_kind, error_of, fault_from, stream_exception
from .inbound import INBOUND, BedrockInbound
from .reply import FINISH_REASONS, from_converse, usage_of
from .request import JSON_INSTRUCTION, JSON_TOOL, model_id, to_converse
from .stream import StreamDecoder

DIALECT = BedrockDialect()

__all__ = [
    "DIALECT",
    "ERROR_STATUS",
    "FINISH_REASONS",
    "INBOUND",
    "JSON_INSTRUCTION",
    "JSON_TOOL",
    "BedrockDialect",
    "BedrockInbound",
    "StreamDecoder",
    "error_kind",
    "error_of",
    "fault_from",
    "from_converse",
    "model_id",
    "stream_exception",
    "to_converse",
    "usage_of",
]
