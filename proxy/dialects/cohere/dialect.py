"""The Cohere v2 outbound dialect: chat, embeddings and error replies."""

from __future__ import annotations

from functools import partial

from ...model import ChatRequest, EmbeddingRequest
from ..base import ChatExchange, EmbeddingsExchange, Fault, Target
from ..common import dumps
from .embed import build_embed_request, translate_embeddings
from .errors import cohere_error
from .reply import translate_response
from .request import build_request
from .stream import CohereStream


class CohereDialect:
    """Cohere's v2 Chat and Embed APIs, outbound (clients that speak Cohere to the gateway
    are served by the inbound face, ``inbound.INBOUND``)."""

    name = "cohere"

    def chat(self, request: ChatRequest, target: Target) -> ChatExchange:
        """Encode ``request`` for ``target.model``; raises ``InvalidRequest`` for what Cohere
        cannot carry."""
        model = target.model
        return ChatExchange(
            dumps(build_request(request, model)),
            partial(translate_response, model=model),
            partial(CohereStream, model),
        )

    def embeddings(self, request: EmbeddingRequest, target: Target) -> EmbeddingsExchange:
        """Encode an embeddings request; raises ``InvalidRequest`` for non-text inputs."""
        model = target.model
        body = dumps(build_embed_request(request, model))
        return EmbeddingsExchange(body, partial(translate_embeddings, model=model))

    def fault(self, status: int, body: bytes) -> Fault:
        return cohere_error(status, body)
