"""A fake Amazon Bedrock runtime following the conformance script (Converse and ConverseStream).

Wire format from the Bedrock Runtime API reference: ``POST /model/{modelId}/converse`` and
``/converse-stream``, signed with AWS Signature Version 4 for service ``bedrock`` — the fake
recomputes the signature with botocore from the same test credentials and refuses a request
whose signature does not match (``InvalidSignatureException``, 403), as AWS does. Replies
are Converse JSON (``output.message.content`` blocks, ``stopReason``, ``usage`` with
``inputTokens`` excluding ``cacheReadInputTokens``); streams are the binary
``application/vnd.amazon.eventstream`` framing with ``messageStart``,
``contentBlockStart``/``Delta``/``Stop``, ``messageStop`` and ``metadata`` events; errors are
``{"message": ...}`` with the exception's name in ``x-amzn-ErrorType``.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proxy.dialects.bedrock import JSON_INSTRUCTION
from proxy.upstream.eventstream import encode_message
from tests.providers.conformance import (
    ALL_CASES,
    ARG_PIECES,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    SYSTEM_TEXT,
    TEXT_PIECES,
    TOOL_ARGS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_RESULT,
    ProviderHarness,
    Received,
    case_of,
    error_status,
    json_response,
    reply_text,
    sse_response,
)

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ACCESS_KEY_ID = "AKIAFAKEBEDROCK0001"
SECRET_ACCESS_KEY = "fake/Secret+AccessKey0123456789abcdefghij"
SESSION_TOKEN = "FwoGZXIvYXdzEFAKEsessiontoken0123456789"
REGION = "us-east-1"
EVENTSTREAM = "application/vnd.amazon.eventstream"

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)

_ERRORS = {
    400: ("ValidationException", "Malformed input request: the prompt is too long."),
    401: (
        "UnrecognizedClientException",
        "The security token included in the request is invalid (secret {key}).",
    ),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
}


def sigv4_problem(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
) -> str | None:
    """Why the request's SigV4 signature is wrong, or None when it is right.

    ``headers`` are the received headers with lower-case names; ``url`` the scheme, host and
    raw path as they came over the wire.
    """
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        return "no AWS4-HMAC-SHA256 authorization header"
    if match["key"] != credentials.access_key:
        return "wrong access key id"
    if (match["region"], match["service"]) != (region, "bedrock"):
        return f"wrong scope {match['region']}/{match['service']}"
    stamp = headers.get("x-amz-date", "")
    if not stamp.startswith(match["date"]):
        return "x-amz-date does not match the credential scope"
    signed = match["signed"].split(";")
    if "host" not in signed:
        return "host is not signed"
    if credentials.token and "x-amz-security-token" not in signed:
        return "the session token is not signed"
    if any(name not in headers for name in signed):
        return "a signed header is missing"
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: headers[name] for name in signed}
    )
    request.context["timestamp"] = stamp
    auth = SigV4Auth(credentials, "bedrock", region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    expected = auth.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, match["signature"]):
        return "signature mismatch"
    return None


class BedrockHarness(ProviderHarness):
    name = "bedrock"
    # Converse takes image bytes or S3 locations, never an https URL to fetch.
    supports = ALL_CASES - {"image_url"}
    caching = True
    # The key the suite checks never leaks: for Bedrock, the secret access key.
    api_key = SECRET_ACCESS_KEY

    def __init__(self) -> None:
        super().__init__()
        self.credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)
        self.signature_failures: list[str] = []

    def litellm_params(self, model_name: str) -> dict[str, Any]:
        return {
            "model": f"bedrock/{MODEL_ID}",
            "api_base": self.origin,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
            "aws_session_token": SESSION_TOKEN,
            "aws_region_name": REGION,
        }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/model/{model}/converse", self._converse),
            web.post("/model/{model}/converse-stream", self._converse),
        ]

    def check(self, case: str, received: Received) -> None:
        action = "converse-stream" if case.startswith("stream") else "converse"
        assert received.path == f"/model/{MODEL_ID}/{action}"
        headers = received.headers
        assert headers["x-amz-security-token"] == SESSION_TOKEN
        for name, value in headers.items():
            assert SECRET_ACCESS_KEY not in value, f"the secret key is in {name}"
        assert SECRET_ACCESS_KEY.encode() not in received.raw
        body = received.json
        assert body["inferenceConfig"]["maxTokens"] == 64
        if case in ("tools", "stream_tools"):
            (tool,) = body["toolConfig"]["tools"]
            assert tool["toolSpec"]["name"] == TOOL_NAME
            assert tool["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]
            assert body["toolConfig"]["toolChoice"] == {"auto": {}}
        if case == "json":
            assert {"text": JSON_INSTRUCTION} in body["system"]
        if case == "system":
            assert body["system"] == [{"text": SYSTEM_TEXT}]

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        received = await self.record(request)
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        problem = sigv4_problem(
            request.method, url, received.headers, received.raw, self.credentials, REGION
        )
        if problem is not None:
            self.signature_failures.append(problem)
            return _error(403, "InvalidSignatureException", f"bad signature: {problem}")
        body = received.json
        messages: list[dict[str, Any]] = body["messages"]
        case = case_of(_last_user_text(messages)) or "text"
        status = error_status(case)
        if status is not None:
            kind, message = _ERRORS.get(status, ("InternalServerException", "error"))
            if status == 401:
                status = 403  # Bedrock answers a bad credential with 403
            return _error(status, kind, message.format(key=SECRET_ACCESS_KEY))
        if request.path.endswith("/converse-stream"):
            return await sse_response(request, _stream_events(case), content_type=EVENTSTREAM)
        if case == "tools":
            content: list[dict[str, Any]] = [
                {"toolUse": {"toolUseId": TOOL_CALL_ID, "name": TOOL_NAME, "input": TOOL_ARGS}}
            ]
            stop = "tool_use"
        else:
            content = [{"text": _reply(case, body)}]
            stop = "end_turn"
        return json_response(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": _usage(),
                "metrics": {"latencyMs": 42},
            }
        )


def _usage() -> dict[str, int]:
    return {
        "inputTokens": PROMPT_TOKENS - CACHED_TOKENS,
        "outputTokens": COMPLETION_TOKENS,
        "totalTokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "cacheReadInputTokens": CACHED_TOKENS,
        "cacheWriteInputTokens": 0,
    }


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        texts = [b["text"] for b in message.get("content", []) if "text" in b]
        if texts:
            return " ".join(texts)
    return ""


def _reply(case: str, body: dict[str, Any]) -> str:
    messages: list[dict[str, Any]] = body["messages"]
    system = " ".join(block["text"] for block in body.get("system", []))
    image = None
    tool_result = None
    for message in messages:
        for block in message["content"]:
            if "image" in block:
                image = "image/" + block["image"]["format"]
            result = block.get("toolResult")
            if result and result["toolUseId"] == TOOL_CALL_ID and _called(messages):
                tool_result = " ".join(part["text"] for part in result["content"])
    if case == "tool_result" and tool_result != TOOL_RESULT:
        return "result:missing"
    return reply_text(
        case, system=system, turns=len(messages), image=image, tool_result=tool_result
    )


def _called(messages: list[dict[str, Any]]) -> bool:
    return any(
        block.get("toolUse", {}).get("toolUseId") == TOOL_CALL_ID
        and block["toolUse"]["input"] == TOOL_ARGS
        for message in messages
        if message["role"] == "assistant"
        for block in message["content"]
    )


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """One ConverseStream event frame (with the ``p`` padding field AWS adds)."""
    headers = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps({**payload, "p": "abcdefgh"}))


def _stream_events(case: str) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if case == "stream_tools":
        start = {"toolUse": {"toolUseId": TOOL_CALL_ID, "name": TOOL_NAME}}
        events.append(event("contentBlockStart", {"contentBlockIndex": 0, "start": start}))
        for piece in ARG_PIECES:
            delta = {"toolUse": {"input": piece}}
            events.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        stop = "tool_use"
    else:
        for piece in TEXT_PIECES:
            delta = {"text": piece}
            events.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        stop = "end_turn"
    events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(event("messageStop", {"stopReason": stop}))
    events.append(event("metadata", {"usage": _usage(), "metrics": {"latencyMs": 42}}))
    return events


def _error(status: int, kind: str, message: str) -> web.Response:
    return json_response(
        {"message": message},
        status,
        **{"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


HARNESS = BedrockHarness()
