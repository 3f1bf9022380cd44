"""What a provider is to the engine: a registry entry, not an ``if`` ladder.

A ``ProviderSpec`` says where a deployment's requests go (``url``), how they are
authenticated (``headers``: bearer, ``x-api-key``, ``api-key``, ``x-goog-api-key`` or a SigV4
signature over the body), how its streams are framed (SSE or the AWS event stream), which
dialect speaks its format, and which inbound format it accepts as the client's own bytes
(``native``: ``"openai"`` for the OpenAI-compatible family, ``"anthropic"`` for Anthropic),
which is what keeps those paths zero-copy. Specs hold no connection state: the engine owns
the transports.
"""

from __future__ import annotations

import enum
from typing import Literal, Protocol

from ..dialects.base import Outbound
from .deployment import Deployment


class Operation(enum.Enum):
    CHAT = "chat/completions"
    COMPLETION = "completions"
    EMBEDDING = "embeddings"


Framing = Literal["sse", "aws-eventstream"]


class ProviderSpec(Protocol):
    name: str
    dialect: Outbound
    framing: Framing
    # The inbound format this provider takes as the client's bytes (only ``model`` rewritten).
    native: str | None
    # What it serves; the engine refuses the rest with a 400 naming the provider.
    operations: frozenset[Operation]
    default_base: str | None

    def url(
        self, deployment: Deployment, model: str, operation: Operation, stream: bool
    ) -> str: ...

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        """Content type, accept, and the credential in this provider's style (a signature
        over ``body`` for Bedrock). Raises ``UpstreamStatusError(401)`` when no credential
        can be found."""
        ...
