"""``anthropic/``: Anthropic's Messages API, both ways.

OpenAI chat in → Messages request out (``anthropic_request``). Messages reply → OpenAI:
text, ``tool_use`` → ``tool_calls`` (arguments a JSON string), ``thinking`` →
``reasoning_content``; stop reasons ``end_turn``/``stop_sequence`` → stop, ``max_tokens`` →
length, ``tool_use`` → tool_calls; usage in OpenAI's meaning: prompt = input + cache read +
cache creation, cached = cache read. Streams are translated event by event
(``anthropic_stream.ChatStream``). A ``/v1/messages`` request (``MessagesRequest``) skips
all of this: its bytes go upstream with only ``model`` rewritten and the reply comes back
untouched, usage sniffed from the body or the ``message_start``/``message_delta`` events.

The key travels only in ``x-api-key``; error messages are scrubbed of it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ..errors import TollwayError, UpstreamStatusError, UpstreamUnreachable
from ..formats.translate import chat_completion, chat_request, tool_call_json, usage
from ..parse import ParsedRequest
from ..upstream.transport import Transport, UpstreamResponse
from ..usage import Usage
from ._openai_format import read_all
from .anthropic_request import JSON_TOOL, build_messages_request, json_tool_requested, with_model
from .anthropic_stream import ChatStream, NativeUsage, finish_reason, native_body_usage
from .base import EVENT_STREAM, Deployment, Reply
from .openai import upstream_error

DEFAULT_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class MessagesRequest(ParsedRequest, kw_only=True):
    """A ``/v1/messages`` request: OpenAI chat fields (for every other provider) plus the
    client's own Anthropic bytes, which an ``anthropic/`` deployment receives unchanged."""

    native_body: bytes
    native_headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Set by the adapter that answered in Anthropic's format, so the route relays untouched.
    answered_natively: bool = False


class AnthropicProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def headers(
        self, deployment: Deployment, stream: bool, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "accept-encoding": "identity",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if extra:
            headers.update(extra)
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return headers

    @staticmethod
    def url(deployment: Deployment) -> str:
        base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    async def send(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        if isinstance(request, MessagesRequest):
            return await self._send_native(request, deployment, upstream_model)
        body = chat_request(request)
        json_tool = json_tool_requested(body)
        wire = orjson.dumps(build_messages_request(body, deployment, upstream_model))
        resp = await self._post(deployment, wire, request.stream)
        if request.stream and _is_event_stream(resp):
            stream = ChatStream(upstream_model, request.wants_usage_chunk, json_tool, deployment)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=stream.run(resp.iter_chunks()),
                usage_of_stream=stream.final_usage,
                close=resp.close,
            )
        raw = await read_all(resp, deployment.deadlines)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnreachable("the upstream sent a reply that is not JSON") from exc
        body_out, reported = translate_message(payload, upstream_model, json_tool)
        return Reply(body=body_out, usage=reported)

    async def _send_native(
        self, request: MessagesRequest, deployment: Deployment, upstream_model: str
    ) -> Reply:
        wire = with_model(request.native_body, upstream_model)
        resp = await self._post(deployment, wire, request.stream, request.native_headers)
        if request.stream and _is_event_stream(resp):
            sniffer = NativeUsage()
            request.answered_natively = True
            return Reply(
                content_type=EVENT_STREAM,
                chunks=sniffer.relay(resp.iter_chunks()),
                usage_of_stream=sniffer.final,
                close=resp.close,
            )
        raw = await read_all(resp, deployment.deadlines)
        request.answered_natively = True
        return Reply(body=raw, usage=native_body_usage(raw))

    async def _post(
        self,
        deployment: Deployment,
        wire: bytes,
        stream: bool,
        extra: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        headers = self.headers(deployment, stream, extra)
        resp = await self._transport.post(self.url(deployment), wire, headers, deployment.deadlines)
        if resp.status >= 400:
            raw = await resp.read()
            raise anthropic_error(resp.status, raw, resp.header("retry-after"), deployment)
        return resp


# -- response -----------------------------------------------------------------------------


def translate_message(
    payload: dict[str, Any], model: str, json_tool: bool = False
) -> tuple[bytes, Usage | None]:
    """An Anthropic ``message`` body as an OpenAI ``chat.completion`` body, and its usage."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in payload.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool and block.get("name") == JSON_TOOL:
                texts.append(arguments)
            else:
                calls.append(tool_call_json(block.get("id") or "", block.get("name"), arguments))
    finish = finish_reason(payload.get("stop_reason"), bool(calls))
    reported = anthropic_usage(payload.get("usage"))
    body = chat_completion(
        ident="chatcmpl-" + str(payload.get("id") or ""),
        model=str(payload.get("model") or model),
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls,
        finish_reason=finish,
        usage=reported,
        reasoning="".join(thinking) or None,
    )
    return body, reported


def anthropic_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached
    prompt += int(raw.get("cache_creation_input_tokens") or 0)
    return usage(prompt, int(raw.get("output_tokens") or 0), cached=cached)


# -- errors and plumbing ------------------------------------------------------------------


def anthropic_error(
    status: int, raw: bytes, retry_after: str | None, deployment: Deployment
) -> TollwayError:
    """Anthropic's ``{"type": "error", "error": {type, message}}`` as the contract's error.

    529 (``overloaded_error``) becomes a retryable 503, so the router tries elsewhere.
    """
    if status == 529:
        message = upstream_error(500, raw, None, deployment).message.partition(": ")[2]
        return UpstreamStatusError(
            503,
            f"upstream overloaded (529): {message}",
            type="upstream_error",
            code="overloaded_error",
            retry_after=retry_after,
        )
    return upstream_error(status, raw, retry_after, deployment)


def _is_event_stream(resp: UpstreamResponse) -> bool:
    return (resp.header("content-type") or "").startswith("text/event-stream")
