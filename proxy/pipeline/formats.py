"""The parse stage and the client's side of the respond stage, per inbound format.

An ``InboundFormat`` is what one route speaks to its clients: how a body is parsed into the
``ParsedRequest`` every later stage reads, and how a typed reply, a stream of events and an
error are written back in that format. It is also the one place errors are rendered in each
format's shape (``error_body`` before the headers are sent, ``stream_error`` after).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ..dialects import anthropic, openai, responses
from ..dialects.base import EventEncoder, Inbound
from ..dialects.bedrock import inbound as bedrock_inbound
from ..dialects.bedrock.reply import decode_converse
from ..dialects.cohere import inbound as cohere_inbound
from ..dialects.cohere.reply import translate_response
from ..dialects.common import check_model
from ..dialects.gemini import inbound as gemini_inbound
from ..dialects.gemini.reply import decode_reply as decode_gemini_reply
from ..dialects.responses.outbound_reply import decode_reply as decode_responses_reply
from ..errors import InvalidRequest, TollwayError
from ..model import ChatReply, ChatRequest, EmbeddingReply
from ..request import Kind, ParsedRequest, refuse_client_credentials

# What a stream encoder is made from when only its error event is wanted.
_NO_REQUEST = ChatRequest(model="", messages=[])


PathParams = Mapping[str, str]
Headers = tuple[tuple[bytes, bytes], ...]
SSE_HEADERS: Headers = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class InboundFormat:
    """OpenAI's chat, completions and embeddings bodies (the pass-through formats)."""

    name = "openai"
    # Client headers a native upstream receives as they are.
    forwarded_headers: tuple[bytes, ...] = ()
    # Headers besides ``authorization`` and ``x-api-key`` that carry the caller's key.
    key_headers: tuple[bytes, ...] = ()
    stream_headers: Headers = SSE_HEADERS

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        return openai.parse(self.kind, body)

    def encode_reply(self, request: ParsedRequest, reply: ChatReply | EmbeddingReply) -> bytes:
        if isinstance(reply, EmbeddingReply):
            return openai.DIALECT.encode_embeddings(reply, _estimated_tokens(request))
        return openai.DIALECT.encode_reply(reply)

    def stream_encoder(self, request: ParsedRequest) -> EventEncoder:
        return openai.ChunkEncoder(include_usage=request.wants_usage_chunk)

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        """A reply already in this format (a pass-through answer), for post-call stages."""
        return openai.decode_reply(body)

    def error_body(self, exc: TollwayError) -> bytes:
        return exc.body()

    def error_headers(self, exc: TollwayError) -> list[tuple[bytes, bytes]]:
        """Headers an error answer carries in this format (beside the contract's own)."""
        return []

    def stream_error(self, exc: TollwayError) -> bytes:
        """The in-band event that ends a stream which failed after its headers were sent."""
        return b"data: " + exc.body() + b"\n\n"


class AzureFormat(InboundFormat):
    """Azure OpenAI clients: ``/openai/deployments/{deployment}/chat/completions`` (and
    ``completions``, ``embeddings``) ``?api-version=...``; the deployment in the path is the
    model group, whatever ``model`` the body names (Azure's SDK may send none). Azure's
    clients send the key in ``api-key``."""

    key_headers: tuple[bytes, ...] = (b"api-key",)

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        deployment = (params or {}).get("deployment", "")
        check_model(deployment)
        try:
            fields = _raw_fields.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"the request body is not a JSON object: {exc}") from None
        fields["model"] = msgspec.Raw(msgspec.json.encode(deployment))
        return openai.parse(self.kind, msgspec.json.encode(fields))


_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


def azure_path(kind: Kind) -> re.Pattern[str]:
    """Azure OpenAI's own path for ``kind`` (its ``api-version`` query is not read)."""
    return re.compile(rf"/openai/deployments/(?P<deployment>[^/]+)/{kind.value}")


def _estimated_tokens(request: ParsedRequest) -> int | None:
    """A client-visible token count for embeddings whose provider reports none (about four
    bytes a token); the ledger still bills such a call as estimated."""
    try:
        texts = request.embedding().texts()
    except TypeError:
        return None
    return sum(max(1, (len(str(text).encode()) + 3) // 4) for text in texts)


class _TranslatedFormat(InboundFormat):
    """A format served by decoding into the common model (nothing forwarded as bytes unless
    the provider speaks it natively)."""

    def _parsed(
        self, chat: ChatRequest, body: bytes, forwarded: dict[str, str] | None
    ) -> ParsedRequest:
        check_model(chat.model)
        # A native upstream may be sent the client's bytes: its credentials never go along.
        refuse_client_credentials(body)
        return ParsedRequest(
            kind=Kind.CHAT,
            model=chat.model,
            stream=bool(chat.stream),
            wants_usage_chunk=chat.wants_usage,
            max_tokens=chat.output_limit(),
            body=body,
            chat=chat,
            format=self.name,
            headers=forwarded,
        )


class MessagesFormat(_TranslatedFormat):
    """``POST /v1/messages``: Anthropic Messages clients."""

    name = "anthropic"
    forwarded_headers: tuple[bytes, ...] = anthropic.FORWARDED_HEADERS

    def __init__(self) -> None:
        super().__init__(Kind.CHAT)

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        return self._parsed(anthropic.DIALECT.decode_request(body), body, forwarded)

    def encode_reply(self, request: ParsedRequest, reply: ChatReply | EmbeddingReply) -> bytes:
        assert isinstance(reply, ChatReply)
        # The message is named by the model the client asked for, as Anthropic's API does.
        return anthropic.DIALECT.encode_reply(msgspec.structs.replace(reply, model=request.model))

    def stream_encoder(self, request: ParsedRequest) -> EventEncoder:
        return anthropic.DIALECT.stream_encoder(request.chat())

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        return anthropic.decode_message(body, request.model, False)

    def error_body(self, exc: TollwayError) -> bytes:
        return anthropic.DIALECT.encode_error(exc)

    def stream_error(self, exc: TollwayError) -> bytes:
        return b"event: error\ndata: " + self.error_body(exc) + b"\n\n"


class ResponsesFormat(_TranslatedFormat):
    """``POST /v1/responses``: OpenAI Responses clients."""

    name = "responses"

    def __init__(self) -> None:
        super().__init__(Kind.CHAT)

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        return self._parsed(responses.DIALECT.decode_request(body), body, None)

    def encode_reply(self, request: ParsedRequest, reply: ChatReply | EmbeddingReply) -> bytes:
        assert isinstance(reply, ChatReply)
        return responses.DIALECT.encode_reply_for(request.chat(), reply)

    def stream_encoder(self, request: ParsedRequest) -> EventEncoder:
        return responses.DIALECT.stream_encoder(request.chat())

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        return decode_responses_reply(body, request.model)

    def error_body(self, exc: TollwayError) -> bytes:
        return responses.DIALECT.encode_error(exc)

    def stream_error(self, exc: TollwayError) -> bytes:
        return b"event: error\ndata: " + self.error_body(exc) + b"\n\n"


class _ProviderFormat(_TranslatedFormat):
    """A provider's own API spoken by clients (Gemini, Cohere, Bedrock): served through that
    format's inbound dialect face; a failed stream ends with that format's error event."""

    inbound: Inbound

    def __init__(self) -> None:
        super().__init__(Kind.CHAT)

    def encode_reply(self, request: ParsedRequest, reply: ChatReply | EmbeddingReply) -> bytes:
        assert isinstance(reply, ChatReply)
        return self.inbound.encode_reply(reply)

    def stream_encoder(self, request: ParsedRequest) -> EventEncoder:
        return self.inbound.stream_encoder(request.chat())

    def error_body(self, exc: TollwayError) -> bytes:
        return self.inbound.encode_error(exc)

    def stream_error(self, exc: TollwayError) -> bytes:
        # A fresh encoder's error event (Cohere ends a failed stream with message-end,
        # Bedrock with an exception message).
        return self.inbound.stream_encoder(_NO_REQUEST).error(exc)


class GeminiFormat(_ProviderFormat):
    """Google AI Studio clients: ``/v1beta/models/{model}:generateContent`` and
    ``:streamGenerateContent`` (also under ``/gemini``); the model is in the path."""

    name = "gemini"
    key_headers: tuple[bytes, ...] = (b"x-goog-api-key",)
    inbound = gemini_inbound.INBOUND

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        params = params or {}
        stream = params.get("method") == "streamGenerateContent"
        chat = gemini_inbound.INBOUND.decode_request(body, params.get("model", ""), stream)
        return self._parsed(chat, body, None)

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        return decode_gemini_reply(body, request.model)


class CohereFormat(_ProviderFormat):
    """Cohere v2 chat clients: ``/v2/chat`` (also under ``/cohere``)."""

    name = "cohere"
    inbound = cohere_inbound.INBOUND

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        return self._parsed(cohere_inbound.INBOUND.decode_request(body), body, None)

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        return translate_response(body, request.model)


class BedrockFormat(_ProviderFormat):
    """Bedrock Converse clients: ``/model/{modelId}/converse`` and ``/converse-stream`` (also
    under ``/bedrock``); the model id is in the path, the stream is AWS's event stream."""

    name = "bedrock"
    inbound = bedrock_inbound.INBOUND
    stream_headers: Headers = (
        (b"content-type", bedrock_inbound.STREAM_CONTENT_TYPE.encode()),
        (b"cache-control", b"no-cache"),
    )

    def parse(
        self, body: bytes, forwarded: dict[str, str] | None, params: PathParams | None = None
    ) -> ParsedRequest:
        params = params or {}
        stream = params.get("method") == "converse-stream"
        chat = bedrock_inbound.INBOUND.decode_request(body, params.get("model", ""), stream)
        return self._parsed(chat, body, None)

    def decode_reply(self, request: ParsedRequest, body: bytes) -> ChatReply:
        return decode_converse(body, request.model, None)

    def error_headers(self, exc: TollwayError) -> list[tuple[bytes, bytes]]:
        return [(b"x-amzn-errortype", bedrock_inbound.INBOUND.error_type(exc).encode())]
