"""OpenAI's chat format, both ways, and the pass-through helpers that keep it zero-copy.

Inbound it is what ``/v1/chat/completions`` clients speak; outbound it is what OpenAI and
every compatible server (vLLM, Groq, Ollama, Azure …) take. Between an OpenAI client and an
OpenAI-compatible upstream no dialect function runs at all: the engine forwards the client's
bytes with ``forward_body`` and relays the upstream's SSE bytes as they come.
"""

from __future__ import annotations

import msgspec

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest, EmbeddingReply, EmbeddingRequest
from ..base import ChatExchange, EmbeddingsExchange, Fault, Target
from ..common import envelope_fault
from .reply import decode_embeddings, decode_reply, encode_embeddings, encode_reply
from .request import decode_chat, encode_chat, forward_body, parse
from .stream import ChunkDecoder, ChunkEncoder

__all__ = ["DIALECT", "ChunkDecoder", "ChunkEncoder", "decode_reply", "forward_body", "parse"]

_embedding_encoder = msgspec.json.Encoder()


class OpenAIDialect:
    name = "openai"

    # -- outbound --
    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        return ChatExchange(encode_chat(request, target.model), decode_reply, ChunkDecoder)

    def embeddings(self, request: EmbeddingRequest, target: Target) -> EmbeddingsExchange:
        body = msgspec.structs.replace(request, model=target.model)
        return EmbeddingsExchange(_embedding_encoder.encode(body), decode_embeddings)

    def fault(self, status: int, body: bytes) -> Fault:
        return envelope_fault(status, body)

    # -- inbound --
    def decode_request(self, body: bytes) -> ChatRequest:
        return decode_chat(body)

    def encode_reply(self, reply: ChatReply) -> bytes:
        return encode_reply(reply)

    def encode_embeddings(self, reply: EmbeddingReply, tokens: int | None = None) -> bytes:
        return encode_embeddings(reply, tokens)

    def stream_encoder(self, request: ChatRequest) -> ChunkEncoder:
        return ChunkEncoder(include_usage=request.wants_usage)

    def encode_error(self, exc: TollwayError) -> bytes:
        return exc.body()


DIALECT = OpenAIDialect()
