"""A fake Azure OpenAI server following the conformance script.

Wire format from Azure OpenAI's REST reference (data-plane inference): ``POST
/openai/deployments/{deployment-id}/chat/completions?api-version=...`` with the key in the
``api-key`` header; bodies, chunks and usage exactly as OpenAI's; errors
``{"error": {"code", "message"}}`` with Azure's codes (``401`` "Access denied due to
invalid subscription key", ``429`` with ``retry-after``, ``DeploymentNotFound``).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.providers import harness_openai as openai_fake
from tests.providers.conformance import (
    TOOL_ARGS_JSON,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    last_user_text,
    reply_text,
    sse_response,
)

DEPLOYMENT = "conf-gpt4o-deployment"
API_VERSION = "2024-10-21"
_ERRORS = {
    400: ("context_length_exceeded", "This model's maximum context length is 128000 tokens."),
    401: (
        "401",
        "Access denied due to invalid subscription key {key} or wrong API endpoint.",
    ),
    404: ("DeploymentNotFound", "The API deployment for this resource does not exist."),
    429: ("429", "Requests to the ChatCompletions_Create Operation have exceeded the rate limit."),
    500: ("InternalServerError", "The server had an error while processing your request."),
}


class AzureHarness(ProviderHarness):
    name = "azure"
    caching = True

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {
            "model": f"azure/{DEPLOYMENT}",
            "api_base": self.origin,
            "api_key": self.api_key,
            "api_version": API_VERSION,
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/openai/deployments/{deployment}/chat/completions", self._azure)]

    def check(self, case: str, received: Received) -> None:
        assert received.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
        assert received.query == {"api-version": API_VERSION}
        assert received.headers.get("api-key") == self.api_key
        assert "authorization" not in received.headers
        body = received.json
        if case == "json":
            assert body["response_format"] == {"type": "json_object"}
        if case.startswith("stream"):
            assert body["stream_options"]["include_usage"] is True

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        if received.headers.get("api-key") != self.api_key:
            return _error(401, received.headers.get("api-key", ""))
        if request.match_info["deployment"] != DEPLOYMENT:
            return _error(404, "")
        body = received.json
        messages: list[dict[str, Any]] = body["messages"]
        case = case_of(last_user_text(messages)) or "text"
        status = error_status(case)
        if status is not None:
            return _error(status, self.api_key)
        # From here on Azure's wire format is OpenAI's: the OpenAI fake's fixtures answer.
        if body.get("stream"):
            return await sse_response(request, openai_fake._stream_events(case, body))
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "stop"
        if case == "tools":
            message["tool_calls"] = [openai_fake._tool_call(TOOL_ARGS_JSON)]
            finish = "tool_calls"
        else:
            message["content"] = reply_text(case, **openai_fake._facts(messages))
        return json_response(
            {
                "id": "chatcmpl-azure-conf",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": openai_fake._usage(),
            }
        )


def _error(status: int, key: str) -> web.Response:
    code, message = _ERRORS[status]
    headers = {"retry-after": "1"} if status == 429 else {}
    payload = {"error": {"code": code, "message": message.format(key=key)}}
    return json_response(payload, status, **headers)


HARNESS = AzureHarness()
