"""A fake Google AI Studio (Gemini API) server following the conformance script.

Wire format from the Gemini API reference (``models.generateContent``,
``models.streamGenerateContent``, ``GenerateContentResponse``, ``UsageMetadata``, API errors):
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` with
the key in ``x-goog-api-key``; requests carry ``contents`` (roles ``user``/``model``, parts
``text``/``inlineData``/``fileData``/``functionCall``/``functionResponse``),
``systemInstruction``, ``tools[].functionDeclarations``, ``toolConfig`` and
``generationConfig``; replies ``candidates[].content.parts`` with ``finishReason`` and
``usageMetadata`` (``promptTokenCount`` includes ``cachedContentTokenCount``); streams are
``data: <GenerateContentResponse>`` events with no end marker; errors
``{"error": {"code", "message", "status", "details"}}``.

Gemini streams a function call whole, in one event, so its ``stream_tools`` case expects the
arguments in one delta or more (``whole_tool_calls``) instead of the script's two or more.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.providers.conformance import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT_PIECES,
    TOOL_ARGS,
    TOOL_NAME,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    reply_text,
    sse_response,
)

MODEL = "gemini-fake-flash"
_ERRORS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "API key not valid: {key}. Please pass a valid API key."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class GeminiHarness(ProviderHarness):
    name = "gemini"
    caching = True
    whole_tool_calls = True

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {
            "model": f"gemini/{MODEL}",
            "api_base": f"{self.origin}/v1beta",
            "api_key": self.api_key,
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1beta/models/{call}", self._models)]

    def check(self, case: str, received: Received) -> None:
        assert received.headers.get("x-goog-api-key") == self.api_key
        assert "key" not in received.query
        assert self.api_key not in received.path
        assert "authorization" not in received.headers
        body = received.json
        if case.startswith("stream"):
            assert received.path.endswith(f"/{MODEL}:streamGenerateContent")
            assert received.query == {"alt": "sse"}
        else:
            assert received.path.endswith(f"/{MODEL}:generateContent")
        assert body["generationConfig"]["maxOutputTokens"] == 64
        if case == "json":
            assert body["generationConfig"]["responseMimeType"] == "application/json"
        if case in ("tools", "stream_tools", "tool_result"):
            (declaration,) = body["tools"][0]["functionDeclarations"]
            assert declaration["name"] == TOOL_NAME
            assert declaration["parameters"]["type"] == "OBJECT"
        if case == "tool_result":
            call = body["contents"][1]["parts"][0]["functionCall"]
            assert call == {"name": TOOL_NAME, "args": TOOL_ARGS}
            response = body["contents"][2]["parts"][0]["functionResponse"]
            assert response["name"] == TOOL_NAME

    async def _models(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        model, _, method = request.match_info["call"].partition(":")
        if received.headers.get("x-goog-api-key") != self.api_key:
            return _error(401, received.headers.get("x-goog-api-key", ""))
        if model != MODEL or method not in ("generateContent", "streamGenerateContent"):
            return _error(400, self.api_key)
        body = received.json
        case = case_of(_last_user_text(body["contents"])) or "text"
        status = error_status(case)
        if status is not None:
            return _error(status, self.api_key)
        if method == "streamGenerateContent":
            return await sse_response(request, _stream_events(case))
        if case == "tools":
            parts: list[dict[str, Any]] = [{"functionCall": {"name": TOOL_NAME, "args": TOOL_ARGS}}]
        else:
            parts = [{"text": reply_text(case, **_facts(body))}]
        return json_response(_response(parts, "STOP"))


def _last_user_text(contents: list[dict[str, Any]]) -> str:
    for content in reversed(contents):
        if content.get("role") != "user":
            continue
        texts = [p["text"] for p in content.get("parts", []) if "text" in p]
        if texts:
            return " ".join(texts)
    return ""


def _facts(body: dict[str, Any]) -> dict[str, Any]:
    system_parts = (body.get("systemInstruction") or {}).get("parts", [])
    system = "".join(p.get("text", "") for p in system_parts) or None
    image = tool_result = None
    for content in body["contents"]:
        for part in content.get("parts", []):
            if "inlineData" in part:
                image = part["inlineData"]["mimeType"]
            elif "fileData" in part:
                image = part["fileData"]["fileUri"]
            elif "functionResponse" in part:
                tool_result = part["functionResponse"]["response"].get("content")
    return {
        "system": system,
        "turns": len(body["contents"]),
        "image": image,
        "tool_result": tool_result,
    }


def _usage() -> dict[str, Any]:
    return {
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": COMPLETION_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
    }


def _response(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage or _usage(),
        "modelVersion": MODEL,
        "responseId": "fake-response-1",
    }


def _stream_events(case: str) -> list[bytes]:
    # Each event carries the usage so far; the last one the whole count and finishReason.
    partial = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS}
    if case == "stream_tools":
        call = {"functionCall": {"name": TOOL_NAME, "args": TOOL_ARGS}}
        payloads = [_response([call], "STOP")]
    else:
        payloads = [_response([{"text": TEXT_PIECES[0]}], None, partial)]
        payloads += [_response([{"text": piece}], None, partial) for piece in TEXT_PIECES[1:-1]]
        payloads.append(_response([{"text": TEXT_PIECES[-1]}], "STOP"))
    return [b"data: " + orjson.dumps(p) + b"\r\n\r\n" for p in payloads]


def _error(status: int, key: str) -> web.Response:
    code, message = _ERRORS[status]
    error: dict[str, Any] = {"code": status, "message": message.format(key=key), "status": code}
    if status == 429:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
        ]
    return json_response({"error": error}, status)


HARNESS = GeminiHarness()
