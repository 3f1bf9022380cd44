"""The inbound request as every stage sees it, whatever format the client spoke.

A leaf (it imports only the model and the errors). ``ParsedRequest`` carries what routing,
admission and accounting need (kind, model, stream flags, output limit, body size), the
client's own bytes, and the typed common model, built only when a stage asks for it and
then kept: the OpenAI pass-through path never builds it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .errors import InvalidRequest
from .model import ChatRequest, EmbeddingRequest, ImagePart


class Kind(enum.Enum):
    CHAT = "chat/completions"
    COMPLETION = "completions"
    EMBEDDING = "embeddings"


class StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatBody(msgspec.Struct):
    """The fields of an OpenAI chat body that routing and admission read (validated)."""

    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    guardrails: list[str] | None = None
    cache: dict[str, Any] | None = None
    use_cache: bool | None = msgspec.field(default=None, name="use-cache")
    # LiteLLM's request-level routing fields (read by the gateway, never sent upstream):
    # client fallbacks (model names, or {"model": ...}), a canned reply, a forced fallback.
    fallbacks: list[str | dict[str, Any]] | None = None
    mock_response: str | None = None
    mock_testing_fallbacks: bool | None = None
    mock_testing_rate_limit_error: bool | None = None
    mock_timeout: bool | None = None
    # Client-side upstream address and credentials: refused when present (``UNSET``: absent;
    # a JSON null is present too), never forwarded.
    api_base: Any | UnsetType = UNSET
    base_url: Any | UnsetType = UNSET
    api_key: Any | UnsetType = UNSET


class CompletionBody(msgspec.Struct):
    model: str
    prompt: str | list[Any]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    n: int | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    guardrails: list[str] | None = None
    cache: dict[str, Any] | None = None
    use_cache: bool | None = msgspec.field(default=None, name="use-cache")
    fallbacks: list[str | dict[str, Any]] | None = None
    mock_response: str | None = None
    mock_testing_fallbacks: bool | None = None
    mock_testing_rate_limit_error: bool | None = None
    mock_timeout: bool | None = None
    api_base: Any | UnsetType = UNSET
    base_url: Any | UnsetType = UNSET
    api_key: Any | UnsetType = UNSET


class EmbeddingBody(msgspec.Struct):
    model: str
    input: str | list[Any]
    user: str | None = None
    metadata: dict[str, Any] | None = None
    guardrails: list[str] | None = None
    cache: dict[str, Any] | None = None
    use_cache: bool | None = msgspec.field(default=None, name="use-cache")
    api_base: Any | UnsetType = UNSET
    base_url: Any | UnsetType = UNSET
    api_key: Any | UnsetType = UNSET


Light = ChatBody | CompletionBody | EmbeddingBody

# Top-level body fields that would point the gateway at another upstream or credential.
# LiteLLM refuses ``api_base`` / ``base_url`` unless client-side credentials are enabled;
# Tollway refuses them, and ``api_key``, always: the gateway holds upstreams and their keys.
CLIENT_CREDENTIAL_FIELDS = ("api_base", "base_url", "api_key")


class _ClientCredentials(msgspec.Struct):
    api_base: Any | UnsetType = UNSET
    base_url: Any | UnsetType = UNSET
    api_key: Any | UnsetType = UNSET


_client_credentials = msgspec.json.Decoder(_ClientCredentials)


def check_client_credentials(decoded: Light | _ClientCredentials) -> None:
    """400 naming the first client-side credential field a decoded body carries."""
    if decoded.api_base is UNSET and decoded.base_url is UNSET and decoded.api_key is UNSET:
        return  # the usual case: three identity tests
    for name in CLIENT_CREDENTIAL_FIELDS:
        if getattr(decoded, name) is not UNSET:
            raise InvalidRequest(
                f"client-side {name} is not allowed: the gateway chooses the upstream and "
                "holds its credentials",
                param=name,
                code="client_side_credentials",
            )


def refuse_client_credentials(body: bytes) -> None:
    """The same check for a body another format decoded (Anthropic, Responses, ...).

    A decode into a three-field struct: msgspec skips every other value without building it
    and unescapes keys (``"api\\u005fbase"`` is ``api_base``), so it cannot be fooled, and it
    measured faster than a single ``b'"api_base"' in body`` scan (0.85 against 0.98 us for a
    1.2 KB body, 47 against 54 us for 120 KB), so no byte pre-test is worth having.
    """
    try:
        decoded = _client_credentials.decode(body)
    except msgspec.DecodeError:
        return  # not a JSON object: the format's own parse has said so
    check_client_credentials(decoded)


_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
# An OpenAI body's output limits, the current name first.
_OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens")
_NULL = msgspec.Raw(b"null")


class ParsedRequest:
    """One inference request after the parse stage."""

    __slots__ = (
        "_chat",
        "_decode_chat",
        "body",
        "fields",
        "format",
        "gateway_fields",
        "headers",
        "kind",
        "max_tokens",
        "model",
        "prompt_bytes",
        "rewritten",
        "stream",
        "typed",
        "wants_usage_chunk",
    )

    def __init__(
        self,
        *,
        kind: Kind,
        model: str,
        stream: bool,
        wants_usage_chunk: bool,
        max_tokens: int | None,
        body: bytes,
        typed: Light | None = None,
        chat: ChatRequest | None = None,
        decode_chat: Callable[[bytes], ChatRequest] | None = None,
        format: str = "openai",
        headers: dict[str, str] | None = None,
        gateway_fields: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.model = model
        self.stream = stream
        self.wants_usage_chunk = wants_usage_chunk
        self.max_tokens = max_tokens
        self.prompt_bytes = len(body)
        self.body = body
        self.typed = typed
        self._chat = chat
        self._decode_chat = decode_chat
        # The client's wire format: "openai", "anthropic" or "responses".
        self.format = format
        # Client headers a native upstream receives as they are (``anthropic-beta``).
        self.headers = headers or {}
        # Top-level body fields only the gateway reads; never forwarded upstream.
        self.gateway_fields = gateway_fields
        # The top-level keys as raw JSON, decoded once when the body must be rewritten.
        self.fields: dict[str, msgspec.Raw] | None = None
        # A stage changed the request (a masking guardrail): ``body`` no longer says what
        # must be sent, so no upstream gets the client's bytes; it is encoded from the model.
        self.rewritten = False

    def rewrite(self, *, chat: ChatRequest | None = None, typed: Light | None = None) -> None:
        """Replace the request's content (the common model, or the light typed view)."""
        if chat is not None:
            self._chat = chat
        if typed is not None:
            self.typed = typed
        self.rewritten = True

    def cap_output(self, tokens: int, *, completion_tokens_field: bool = False) -> None:
        """Lower the request's output limit to ``tokens`` (all a budget pays for).

        An OpenAI body keeps its pass-through: the limit it names (``max_tokens`` and/or
        ``max_completion_tokens``; when it names none, ``max_completion_tokens`` if
        ``completion_tokens_field`` else ``max_tokens``) is rewritten in the client's bytes.
        Other formats carry the limit in the common model, and the request is marked
        rewritten so every upstream, native or not, is sent the capped model.
        """
        self.max_tokens = tokens
        chat = self._chat
        if chat is not None:
            if chat.max_completion_tokens is not None or (
                chat.max_tokens is None and completion_tokens_field
            ):
                chat = msgspec.structs.replace(chat, max_completion_tokens=tokens)
            if chat.max_tokens is not None or chat.max_completion_tokens is None:
                chat = msgspec.structs.replace(chat, max_tokens=tokens)
            self._chat = chat
        if self.format != "openai":
            self.rewritten = True
            return
        fields = dict(_raw_fields.decode(self.body) if self.fields is None else self.fields)
        names = [name for name in _OUTPUT_LIMITS if name in fields and fields[name] != _NULL]
        if not names:
            names = [_OUTPUT_LIMITS[0] if completion_tokens_field else _OUTPUT_LIMITS[1]]
        limit = msgspec.Raw(str(tokens).encode())
        typed = self.typed
        for name in names:
            fields[name] = limit
            if typed is not None and hasattr(typed, name):
                typed = msgspec.structs.replace(typed, **{name: tokens})
        self.typed = typed
        self.fields = fields
        self.body = msgspec.json.encode(fields)

    def chat(self) -> ChatRequest:
        """The whole request in the common model, decoded on first use and kept."""
        chat = self._chat
        if chat is None:
            if self._decode_chat is None:
                raise TypeError(f"a {self.kind.value} request has no chat form")
            chat = self._chat = self._decode_chat(self.body)
        return chat

    def embedding(self) -> EmbeddingRequest:
        typed = self.typed
        if not isinstance(typed, EmbeddingBody):
            raise TypeError(f"a {self.kind.value} request is not an embeddings request")
        return EmbeddingRequest(model=typed.model, input=typed.input, user=typed.user)

    # -- views the stages read, whichever form is at hand ---------------------------------
    def metadata(self) -> dict[str, Any] | None:
        if self.typed is not None:
            return self.typed.metadata
        if self._chat is not None:
            return self._chat.metadata
        return None

    def guardrails(self) -> list[str] | None:
        """The guardrails the request names: ``guardrails``, or ``metadata.guardrails``."""
        named = self.typed.guardrails if self.typed is not None else None
        if named is None:
            metadata = self.metadata()
            if metadata is not None:
                found = metadata.get("guardrails")
                return found if isinstance(found, list) else None
        return named

    def cache_controls(self) -> dict[str, Any]:
        """The body's ``cache`` controls (LiteLLM's names), with ``use-cache`` folded in."""
        typed = self.typed
        controls: dict[str, Any] = {}
        if typed is not None:
            controls.update(typed.cache or {})
            if typed.use_cache is not None:
                controls["use-cache"] = typed.use_cache
        elif self._chat is not None and self._chat.metadata:
            found = self._chat.metadata.get("cache")
            if isinstance(found, dict):
                controls.update(found)
        return controls

    def end_user(self) -> str | None:
        if self.typed is not None:
            return self.typed.user
        return self._chat.user if self._chat is not None else None

    def image_parts(self) -> int:
        typed = self.typed
        if isinstance(typed, ChatBody):
            count = 0
            for message in typed.messages:
                content = message.content
                if isinstance(content, list):
                    count += sum(
                        1 for part in content if part.get("type") in ("image_url", "image")
                    )
            return count
        if self._chat is not None:
            return sum(
                1
                for message in self._chat.messages
                for part in message.parts()
                if isinstance(part, ImagePart)
            )
        return 0

    def message_count(self) -> int:
        if isinstance(self.typed, ChatBody):
            return len(self.typed.messages)
        return len(self._chat.messages) if self._chat is not None else 0

    def last_user_text(self) -> str:
        typed = self.typed
        if isinstance(typed, CompletionBody):
            return typed.prompt if isinstance(typed.prompt, str) else ""
        if isinstance(typed, ChatBody):
            for message in reversed(typed.messages):
                if message.role != "user":
                    continue
                content = message.content
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(
                        str(part.get("text", "")) for part in content if part.get("type") == "text"
                    )
                return ""
            return ""
        if self._chat is not None:
            for chat_message in reversed(self._chat.messages):
                if chat_message.role == "user":
                    return chat_message.text()
        return ""

    def has_tools(self) -> bool:
        if self.format == "openai":
            return b'"tools"' in self.body or b'"functions"' in self.body
        return bool(self._chat is not None and self._chat.tool_list())
