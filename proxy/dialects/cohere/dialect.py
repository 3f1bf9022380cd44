"""The Cohere v2 outbound dialect: chat, embeddings and error replies."""

from __future__ import annotations

from ...model import ChatReply, ChatRequest, EmbeddingRequest
from ..base import Fault, Target
from ..common import dumps
from .embed import CohereEmbedExchange
from .errors import cohere_error
from .reply import translate_response
from .request import build_request
from .stream import CohereStream

DEFAULT_BASE = "https://api.cohere.com"
CHAT_PATH = "/v2/chat"
EMBED_PATH = "/v2/embed"


class CohereExchange:
    """One encoded chat request and the decoders for its reply."""

    __slots__ = ("_model", "body")

    def __init__(self, request: ChatRequest, model: str) -> None:
        self._model = model
        self.body = dumps(build_request(request, model))

    def decode_reply(self, body: bytes) -> ChatReply:
        return translate_response(body, self._model)

    def stream_decoder(self) -> CohereStream:
        return CohereStream(self._model)


class CohereDialect:
    """Cohere's v2 Chat and Embed APIs, outbound only (no client speaks Cohere to us)."""

    name = "cohere"

    def chat(self, request: ChatRequest, target: Target) -> CohereExchange:
        """Encode ``request`` for ``target.model``; raises ``InvalidRequest`` for what Cohere
        cannot carry."""
        return CohereExchange(request, target.model)

    def embeddings(self, request: EmbeddingRequest, target: Target) -> CohereEmbedExchange:
        """Encode an embeddings request; raises ``InvalidRequest`` for non-text inputs."""
        return CohereEmbedExchange(request, target.model)

    def fault(self, status: int, body: bytes) -> Fault:
        return cohere_error(status, body)
