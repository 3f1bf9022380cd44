"""A fake Cohere v2 Chat API following the conformance script.

Wire format from Cohere's API reference (Chat v2, Chat streaming, Errors):
``POST /v2/chat`` with ``Authorization: Bearer``; messages with roles ``system``/``user``/
``assistant`` (``tool_calls``, ``tool_plan``)/``tool`` (``tool_call_id``); a reply
``{id, finish_reason (COMPLETE, TOOL_CALL, ...), message {role, content [{type: text}],
tool_plan, tool_calls}, usage {billed_units, tokens}}`` where ``tokens`` counts the prompt
template Cohere adds and ``billed_units`` what is billed; streams are named SSE events
``message-start``, ``content-start``, ``content-delta``, ``content-end``, ``tool-plan-delta``,
``tool-call-start``, ``tool-call-delta``, ``tool-call-end``, ``message-end`` (finish reason
and usage); errors ``{"id", "message"}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.providers.conformance import (
    ARG_PIECES,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT_PIECES,
    TOOL_ARGS_JSON,
    TOOL_CALL_ID,
    TOOL_NAME,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    last_user_text,
    mime_of_data_url,
    reply_text,
    sse_response,
)

MODEL = "command-fake"
TEMPLATE_TOKENS = 60  # the prompt template Cohere adds and does not bill
COHERE_CALL_ID = "get_weather_8p2cm0h6xmzq"
TOOL_PLAN = "I will look up the weather in Paris."
_ERRORS = {
    400: "invalid request: message must be at least 1 token long or tool results specified.",
    401: "invalid api token: {key}",
    429: "You are using a Trial key, which is limited to 10 API calls / minute.",
    500: "internal server error, this has been reported to our developers.",
}


class CohereHarness(ProviderHarness):
    name = "cohere"

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {"model": f"cohere/{MODEL}", "api_base": self.origin, "api_key": self.api_key}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v2/chat", self._chat)]

    def check(self, case: str, received: Received) -> None:
        assert received.headers.get("authorization") == f"Bearer {self.api_key}"
        body = received.json
        assert body["model"] == MODEL
        assert body["max_tokens"] == 64
        assert body["stream"] is case.startswith("stream")
        if case == "json":
            assert body["response_format"] == {"type": "json_object"}
        if case in ("tools", "stream_tools"):
            assert body["tools"][0]["function"]["name"] == TOOL_NAME
            assert "tool_choice" not in body  # "auto" is Cohere's default
        if case == "tool_result":
            assistant, tool = body["messages"][1], body["messages"][2]
            assert assistant["tool_calls"][0]["id"] == TOOL_CALL_ID
            arguments = assistant["tool_calls"][0]["function"]["arguments"]
            assert orjson.loads(arguments) == orjson.loads(TOOL_ARGS_JSON)
            assert tool == {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "sunny"}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        if received.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, self.api_key)
        body = received.json
        case = case_of(last_user_text(body["messages"])) or "text"
        status = error_status(case)
        if status is not None:
            return _error(status, self.api_key)
        if body.get("stream"):
            return await sse_response(request, _stream_events(case))
        message: dict[str, Any] = {"role": "assistant"}
        if case == "tools":
            message["tool_plan"] = TOOL_PLAN
            message["tool_calls"] = [_tool_call(TOOL_ARGS_JSON)]
            finish = "TOOL_CALL"
        else:
            message["content"] = [{"type": "text", "text": reply_text(case, **_facts(body))}]
            finish = "COMPLETE"
        ident = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
        payload = {"id": ident, "finish_reason": finish, "message": message, "usage": _usage()}
        return json_response(payload)


def _facts(body: dict[str, Any]) -> dict[str, Any]:
    messages = body["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    tool = next((m["content"] for m in messages if m["role"] == "tool"), None)
    image = None
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    image = mime_of_data_url(url) if url.startswith("data:") else url
    turns = sum(1 for m in messages if m["role"] != "system")
    return {"system": system, "turns": turns, "image": image, "tool_result": tool}


def _tool_call(arguments: str) -> dict[str, Any]:
    return {
        "id": COHERE_CALL_ID,
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": arguments},
    }


def _usage() -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        "tokens": {
            "input_tokens": PROMPT_TOKENS + TEMPLATE_TOKENS,
            "output_tokens": COMPLETION_TOKENS,
        },
    }


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _stream_events(case: str) -> list[bytes]:
    opening = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
    start = {
        "id": "29f14a5a-11de-4cae-9800-25e4747408ea",
        "type": "message-start",
        "delta": {"message": {**opening, "citations": []}},
    }
    events = [_event(start)]
    if case == "stream_tools":
        events.append(
            _event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": TOOL_PLAN}}})
        )
        first = {"message": {"tool_calls": _tool_call("")}}
        events.append(_event({"type": "tool-call-start", "index": 0, "delta": first}))
        for piece in ARG_PIECES:
            delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            events.append(_event({"type": "tool-call-delta", "index": 0, "delta": delta}))
        events.append(_event({"type": "tool-call-end", "index": 0}))
        finish = "TOOL_CALL"
    else:
        opened = {"message": {"content": {"type": "text", "text": ""}}}
        events.append(_event({"type": "content-start", "index": 0, "delta": opened}))
        for piece in TEXT_PIECES:
            delta = {"message": {"content": {"text": piece}}}
            events.append(_event({"type": "content-delta", "index": 0, "delta": delta}))
        events.append(_event({"type": "content-end", "index": 0}))
        finish = "COMPLETE"
    end = {"type": "message-end", "delta": {"finish_reason": finish, "usage": _usage()}}
    events.append(_event(end))
    return events


def _error(status: int, key: str) -> web.Response:
    payload = {"id": "1b9c5a2e-5d4c-4a8b-9e1f-0c3d2b1a0f9e", "message": _ERRORS[status]}
    payload["message"] = payload["message"].format(key=key)
    return json_response(payload, status)


HARNESS = CohereHarness()
