"""``POST /v1/responses``: OpenAI Responses requests served through chat completions.

The route is the chat pipeline of ``hotpath`` with two ends swapped: the Responses body is
rewritten into an OpenAI chat body (``responses_request``; then parsed, routed, admitted and
sent like any chat call, to any provider), and the chat reply is rewritten into a
``response`` object (``responses_reply``) — or, streaming, into the Responses SSE events
(``responses_stream``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import TollwayError
from ..hotpath import Call, InferenceRoute
from ..parse import Kind, parse
from ..providers.base import EVENT_STREAM, JSON, Reply
from .responses_reply import ResponseShell, to_response
from .responses_request import decode_request, to_chat
from .responses_stream import ResponseEvents

if TYPE_CHECKING:
    from ..app import GatewayState
    from ..auth import Principal


class ResponsesRoute(InferenceRoute):
    """``POST /v1/responses`` (the ``hotpath`` pipeline, with Responses at both ends)."""

    def __init__(self, state: GatewayState) -> None:
        super().__init__(state, Kind.CHAT)

    async def exchange(self, call: Call, principal: Principal, body: bytes) -> Reply:
        responses_request = decode_request(body)
        call.request = request = parse(Kind.CHAT, to_chat(responses_request))
        self.state.accounting.check_models(principal, request.model)
        reply = await self.state.dispatch(call, principal, request)
        shell = ResponseShell(responses_request)
        if reply.chunks is not None:
            events = ResponseEvents(shell)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=events.translate(reply.chunks),
                usage_of_stream=reply.final_usage,
                close=reply.close,
            )
        return Reply(
            status=reply.status,
            content_type=JSON,
            body=to_response(shell, reply.body or b"", reply.usage),
            usage=reply.usage,
        )

    def stream_error(self, exc: TollwayError) -> bytes:
        # ``ResponseEvents.translate`` already sent ``error`` and ``response.failed``.
        return b""
