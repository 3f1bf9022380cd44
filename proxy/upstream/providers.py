"""The provider registry: one entry per ``provider/`` prefix, and deployments built from it.

An entry is data plus two small functions (``url``, ``headers``): its dialect, framing,
default base URL, auth style, what it serves, and which client format it takes as bytes.
Adding an OpenAI-compatible provider is one line in ``config.OPENAI_COMPATIBLE``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Mapping
from urllib.parse import quote

from ..config import OPENAI_COMPATIBLE, ConfigError, ModelEntry, RouterSettings
from ..dialects import anthropic, bedrock, cohere, gemini, openai
from ..dialects.base import Outbound
from ..dialects.responses.outbound import OUTBOUND as RESPONSES_OUTBOUND
from ..errors import UpstreamStatusError
from ..pricing import infer_provider
from ..server.settings import Settings
from .deployment import AUTO_ROUTER, Deployment
from .mock import MOCK_BASE, RESPONSE_HEADER
from .native import AnthropicNative, DecodedNative, ModelInURLNative, NativeFactory, OpenAINative
from .sigv4 import Signer, make_signer
from .spec import Framing, Operation
from .transport import Deadlines, Transport

CHAT = frozenset({Operation.CHAT})
CHAT_AND_EMBEDDINGS = frozenset({Operation.CHAT, Operation.EMBEDDING})
EVERYTHING = frozenset(Operation)
ANTHROPIC_VERSION = "2023-06-01"
AZURE_API_VERSION = "2024-10-21"


def json_headers(
    deployment: Deployment, stream: bool, key_header: str | None, key_prefix: str = ""
) -> dict[str, str]:
    """Headers of a JSON request, the key in ``key_header``, the deployment's extras last."""
    out = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "accept-encoding": "identity",
    }
    if deployment.api_key and key_header:
        out[key_header] = key_prefix + deployment.api_key
    if deployment.params.extra_headers:
        out.update(deployment.params.extra_headers)
    return out


def openai_headers(deployment: Deployment, stream: bool) -> dict[str, str]:
    """OpenAI's style: a bearer key, the organization, the deployment's extras last."""
    out = json_headers(deployment, stream, None)
    if deployment.api_key:
        out["authorization"] = f"Bearer {deployment.api_key}"
    if deployment.params.organization:
        out["openai-organization"] = deployment.params.organization
    if deployment.params.extra_headers:
        out.update(deployment.params.extra_headers)
    return out


class Provider:
    """A registry entry; subclasses override ``url`` and ``headers`` where they differ."""

    # The client format this provider takes as the client's own bytes, and how such an
    # exchange is sent and read (``native``); None: always translated.
    native: str | None = None
    native_reader: NativeFactory | None = None
    # The same upstream reached through OpenAI's Responses API (``openai/responses/<model>``).
    responses: Provider | None = None
    framing: Framing = "sse"
    operations: frozenset[Operation] = CHAT
    key_header: str | None = "authorization"
    key_prefix = "Bearer "

    # False when the headers depend on the body (a signature): they are then built per call.
    cacheable = True
    # Set for a provider served in-process (a custom provider): requests go here, not out.
    transport: Transport | None = None

    def __init__(self, name: str, dialect: Outbound, default_base: str | None = None) -> None:
        self.name = name
        self.dialect = dialect
        self.default_base = default_base
        self._heads: dict[tuple[str, str, Operation, bool], tuple[str, dict[str, str]]] = {}

    def request_head(
        self, deployment: Deployment, model: str, operation: Operation, stream: bool, body: bytes
    ) -> tuple[str, dict[str, str]]:
        """URL and headers for one request; the same for every call of a deployment, model,
        operation and stream flag, so built once (callers copy before changing them)."""
        if not self.cacheable:
            url = self.url(deployment, model, operation, stream)
            return url, self.headers(deployment, url, body, stream)
        key = (deployment.id, model, operation, stream)
        head = self._heads.get(key)
        if head is None:
            url = self.url(deployment, model, operation, stream)
            head = self._heads[key] = (url, self.headers(deployment, url, body, stream))
            if len(self._heads) > 4096:  # wildcard groups: any model name may come
                self._heads.clear()
        return head

    def base(self, deployment: Deployment) -> str:
        return (deployment.api_base or self.default_base or "").rstrip("/")

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        return f"{self.base(deployment)}/{operation.value}"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        return json_headers(deployment, stream, self.key_header, self.key_prefix)

    def secrets(self, deployment: Deployment) -> tuple[str, ...]:
        return (deployment.api_key,) if deployment.api_key else ()


class OpenAICompatible(Provider):
    native = "openai"
    native_reader = OpenAINative
    operations = EVERYTHING

    def __init__(self, name: str, dialect: Outbound, default_base: str | None = None) -> None:
        super().__init__(name, dialect, default_base)
        self.responses = OpenAIResponses(name, RESPONSES_OUTBOUND, default_base)

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        return openai_headers(deployment, stream)


class Azure(OpenAICompatible):
    """Azure OpenAI: OpenAI's format at ``{base}/openai/deployments/{name}/…?api-version``,
    the key in ``api-key``; a base ending in ``/openai/v1`` uses the versionless v1 API."""

    key_header = "api-key"
    key_prefix = ""

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        base = self.base(deployment)
        if base.endswith("/openai/v1"):
            return f"{base}/{operation.value}"
        name = quote(model, safe="")
        version = quote(deployment.params.api_version or AZURE_API_VERSION, safe="")
        if "/openai/deployments/" not in base:
            base = f"{base}/openai/deployments/{name}"
        return f"{base}/{operation.value}?api-version={version}"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        return json_headers(deployment, stream, self.key_header, self.key_prefix)


class OpenAIResponses(Provider):
    """OpenAI's Responses API (``POST {base}/responses``), for ``<provider>/responses/<model>``
    deployments; a ``/v1/responses`` client's bytes pass through to it."""

    native = "responses"
    native_reader = DecodedNative

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        return f"{self.base(deployment)}/responses"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        return openai_headers(deployment, stream)


class Mock(OpenAICompatible):
    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        return f"{MOCK_BASE}/{operation.value}"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        response = deployment.params.mock_response
        return {RESPONSE_HEADER: response} if response else {}


class Anthropic(Provider):
    native = "anthropic"
    native_reader = AnthropicNative
    key_header = "x-api-key"
    key_prefix = ""

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        base = self.base(deployment)
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        out = super().headers(deployment, url, body, stream)
        out["anthropic-version"] = ANTHROPIC_VERSION
        if deployment.api_key:  # after the extras: the deployment's key always wins
            out["x-api-key"] = deployment.api_key
        return out


class Gemini(Provider):
    """Google AI Studio; the key only in ``x-goog-api-key``, never in the URL."""

    operations = CHAT_AND_EMBEDDINGS
    native = "gemini"
    native_reader = ModelInURLNative
    key_header = "x-goog-api-key"
    key_prefix = ""

    def base(self, deployment: Deployment) -> str:
        base = super().base(deployment)
        if re.search(r"/v1(beta\d*|alpha\d*)?$", base) is None:
            base += "/v1beta"
        return base

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        if operation is Operation.EMBEDDING:
            method = "batchEmbedContents"
        else:
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base(deployment)}/{gemini.model_path(model)}:{method}"


class Cohere(Provider):
    operations = CHAT_AND_EMBEDDINGS
    native = "cohere"
    native_reader = DecodedNative

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        method = "embed" if operation is Operation.EMBEDDING else "chat"
        base = self.base(deployment)
        if base.endswith(f"/v2/{method}"):
            return base
        if base.endswith("/v2"):
            return f"{base}/{method}"
        return f"{base}/v2/{method}"


class Bedrock(Provider):
    """Converse / ConverseStream, signed with SigV4 (see ``sigv4``)."""

    framing: Framing = "aws-eventstream"
    cacheable = False  # SigV4 signs the body and the time
    native = "bedrock"
    native_reader = ModelInURLNative

    def __init__(self, name: str, dialect: Outbound, environ: Mapping[str, str]) -> None:
        super().__init__(name, dialect)
        self._environ = environ
        # deployment id → (the params it was made from, its signer): resolved once.
        self._signers: dict[str, tuple[object, Signer]] = {}

    def signer(self, deployment: Deployment) -> Signer:
        cached = self._signers.get(deployment.id)
        if cached is not None and cached[0] is deployment.params:
            return cached[1]
        signer = make_signer(deployment, self._environ)
        self._signers[deployment.id] = (deployment.params, signer)
        return signer

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        # ':' stays as it is and '/' (in ARNs) is escaped: that is the form both HTTP clients
        # put on the wire, so the signed path is the sent path.
        action = "converse-stream" if stream else "converse"
        model_id = quote(bedrock.model_id(model), safe=":")
        return f"{self.signer(deployment).endpoint}/model/{model_id}/{action}"

    def headers(
        self, deployment: Deployment, url: str, body: bytes, stream: bool
    ) -> dict[str, str]:
        headers = self.signer(deployment).headers(url, body, stream)
        if "authorization" not in headers:
            raise UpstreamStatusError(
                401,
                "no AWS credentials for this bedrock/ deployment: set aws_access_key_id and "
                "aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                type="authentication_error",
            )
        return headers

    def secrets(self, deployment: Deployment) -> tuple[str, ...]:
        return self.signer(deployment).secrets


def build_registry(environ: Mapping[str, str] | None = None) -> dict[str, Provider]:
    registry: dict[str, Provider] = {
        name: OpenAICompatible(name, openai.DIALECT, base)
        for name, (base, _env) in OPENAI_COMPATIBLE.items()
    }
    registry["azure"] = Azure("azure", openai.DIALECT)
    registry["mock"] = Mock("mock", openai.DIALECT, MOCK_BASE)
    registry["anthropic"] = Anthropic("anthropic", anthropic.DIALECT, "https://api.anthropic.com")
    registry["gemini"] = Gemini(
        "gemini", gemini.DIALECT, "https://generativelanguage.googleapis.com/v1beta"
    )
    registry["cohere"] = Cohere("cohere", cohere.DIALECT, "https://api.cohere.com")
    registry["bedrock"] = Bedrock(
        "bedrock", bedrock.DIALECT, os.environ if environ is None else environ
    )
    return registry


SUPPORTED = tuple(
    sorted([*OPENAI_COMPATIBLE, "azure", "mock", "anthropic", "gemini", "cohere", "bedrock"])
)


def split_model(model: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` → ``("openai", "gpt-4o")``; a bare name's provider is inferred from
    the price table and LiteLLM's name patterns (``claude-*`` → anthropic), "" when unknown."""
    provider, sep, name = model.partition("/")
    if not sep:
        return infer_provider(model) or "", model
    return provider, name


def build_deployment(
    index: int,
    entry: ModelEntry,
    router: RouterSettings,
    settings: Settings,
    custom: Collection[str] = (),
) -> Deployment:
    """One deployment from one ``model_list`` entry; ``custom`` names the providers added by
    ``litellm_settings.custom_provider_map``. A provider that cannot be served is a
    ``ConfigError`` naming the field (and the nearest supported provider)."""
    params = entry.litellm_params
    where = f"model_list[{index}].litellm_params.model"
    provider, name = split_model(params.model)
    if params.custom_llm_provider:
        provider, name = params.custom_llm_provider, params.model
    if not provider:
        if not params.api_base:
            raise ConfigError(
                f"{where}: cannot tell the provider of {params.model!r}; write it as "
                "provider/model (e.g. openai/..., anthropic/..., ollama/...)"
            )
        # A bare unknown name with an api_base: an OpenAI-compatible server, as LiteLLM's
        # openai-compatible default.
        provider = "openai"
    known = (*SUPPORTED, *custom)
    if provider not in known and provider != AUTO_ROUTER:
        import difflib  # only for a config naming an unknown provider

        close = difflib.get_close_matches(provider, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{where}: provider {provider!r} is not supported; {hint}supported: {', '.join(known)}"
        )
    if provider == "azure" and not params.api_base:
        raise ConfigError(
            f"model_list[{index}].litellm_params.api_base: azure/ models need the resource "
            "endpoint, e.g. https://<resource>.openai.azure.com"
        )
    api_base = params.api_base or _DEFAULT_BASES.get(provider, "")
    # First byte and whole exchange: the deployment's `timeout`, else the router's, else the
    # gateway's; the idle gap inside a stream: `stream_timeout` likewise, else first byte.
    read = params.timeout or router.timeout or settings.request_timeout_s
    stream_idle = params.stream_timeout or router.stream_timeout
    connect = params.connect_timeout or settings.connect_timeout_s
    if entry.model_info.id:
        ident = entry.model_info.id
    else:
        ident = hashlib.sha256(f"{index}:{entry.model_name}:{params.model}".encode()).hexdigest()
        ident = ident[:16]
    return Deployment(
        id=ident,
        model_name=entry.model_name,
        provider=provider,
        upstream_model=name,
        api_base=api_base,
        api_key=params.api_key,
        params=params,
        info=entry.model_info,
        deadlines=Deadlines(connect=connect, read=read, total=read, stream_idle=stream_idle),
    )


_DEFAULT_BASES = {name: base for name, (base, _env) in OPENAI_COMPATIBLE.items()} | {
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "cohere": "https://api.cohere.com",
}
