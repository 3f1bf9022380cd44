"""The provider conformance suite: one shared script that every adapter's fake server follows.

CONTRACT (read this before writing a harness)
=============================================

Each provider has a module ``tests/providers/harness_<name>.py`` that exposes

    HARNESS: ProviderHarness

``tests/providers/test_conformance.py`` finds these modules by glob, starts every harness
once, starts ONE gateway whose config has one model per harness named ``conf-<name>``
(``litellm_params`` from ``HARNESS.litellm_params("conf-<name>")`` plus a priced
``model_info``; router settings with no retries and no cooldowns so cases stay
independent), and runs every case id in ``HARNESS.supports`` (in ``CASES`` order: error
cases last) as an OpenAI-format request through the gateway. ``CONFORMANCE_ONLY=a,b`` in
the environment limits the run to those harnesses.

``ProviderHarness`` (the base class below does the server plumbing; subclass it):

    name: str                      the provider prefix, e.g. "anthropic"
    supports: frozenset[str]       case ids from ``CASES`` this provider passes
    caching: bool                  True when the provider reports cached prompt tokens
    whole_tool_calls: bool         True when the provider streams a tool call in one event
                                   (stream_tools then needs >= 1 argument delta, not >= 2)
    start() / stop()               run the fake server on 127.0.0.1, port 0, in a thread
    litellm_params(model_name)     the config entry's litellm_params: {"model": "<p>/<m>",
                                   "api_base": <the fake's base>, "api_key": ..., ...}
    last_request() -> dict         the JSON body the fake last received, parsed
    last_received() -> Received    path, query, headers and body of the last request
    hits: int                      requests the fake received
    check(case, received)          optional provider-specific asserts on what the fake
                                   received for ``case`` (e.g. that JSON mode arrived);
                                   raise AssertionError when wrong. Default: nothing.

The fake speaks its provider's documented wire format (fixtures written from the provider's
API reference) and decides its reply by the text of the LAST user message, which is always
``"CASE <id>"`` (the last user message that has text: in a tool-result round trip that is
the user turn before the assistant's tool call; helpers: ``case_of(text)``,
``reply_text(case, ...)``, ``last_user_text(messages)``):

    CASE text         → text "pong"                          finish: stop
    CASE system       → text "system:<system prompt text>"   (test sends system "be brief")
    CASE multiturn    → text "turns:<n>"  n = number of messages the provider received in
                        its own format, system excluded (test sends user, assistant, user: 3)
    CASE tools        → one tool call get_weather {"city": "Paris"}   finish: tool_calls
                        (the test sends tools=[get_weather] and tool_choice="auto")
    CASE tool_result  → text "result:sunny" when the request carries the prior assistant
                        tool call and a tool result whose content is "sunny"
    CASE image        → text "image:image/png" (the test sends a PNG as a data URL);
                        "image:<url>" for CASE image_url (an https URL, optional case)
    CASE json         → text '{"ok": true}'; the harness's ``check`` asserts that JSON
                        mode (response_format json_object) reached the provider
    CASE stream_text  → streamed "pong" in >= 2 text deltas ("po", "ng"), finish: stop
    CASE stream_tools → streamed get_weather call, arguments in >= 2 deltas
                        (``ARG_PIECES``), finish: tool_calls
    CASE error_400 / error_401 / error_429 / error_500
                      → that HTTP status with a body in the provider's error format. The
                        401 message contains the api key the fake was called with (so the
                        suite can assert the gateway scrubs it). A 429 may carry retry-after.

Usage is always reported: PROMPT_TOKENS (10) prompt tokens, of which CACHED_TOKENS (2) are
cached when the provider has caching (``caching = True``), and COMPLETION_TOKENS (5)
completion tokens. "Prompt tokens" means OpenAI's meaning (cached included): a provider
that reports cached tokens separately (Anthropic) reports input 8 + cache read 2.

What the suite asserts through the gateway (OpenAI format out):
content, tool_calls (id, type "function", name, JSON-string arguments), finish_reason,
usage {prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cached 2 if caching};
streams: chat.completion.chunk events, >= 2 content/argument deltas, tool-call index/id/name
on the first delta, a final usage chunk (the test asks include_usage), ``data: [DONE]``;
billing: ``x-tollway-response-cost`` > 0 (non-stream) and the spend-log row's tokens
(stream); errors: upstream 400 → 400, 401 → 401, 429 → 429, 500 → 502, body in the
contract's ``{"error": {...}}`` shape, never containing the provider key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded import ThreadedApp

CASES = (
    "text",
    "system",
    "multiturn",
    "tools",
    "tool_result",
    "image",
    "image_url",
    "json",
    "stream_text",
    "stream_tools",
    "error_400",
    "error_401",
    "error_429",
    "error_500",
)
ALL_CASES = frozenset(CASES)

PROMPT_TOKENS = 10
CACHED_TOKENS = 2
COMPLETION_TOKENS = 5

SYSTEM_TEXT = "be brief"
TOOL_NAME = "get_weather"
TOOL_ARGS: dict[str, Any] = {"city": "Paris"}
TOOL_ARGS_JSON = '{"city": "Paris"}'
ARG_PIECES = ('{"city": ', '"Paris"}')
TEXT_PIECES = ("po", "ng")
TOOL_CALL_ID = "call_weather_1"
TOOL_RESULT = "sunny"
JSON_REPLY = '{"ok": true}'
# A 1x1 transparent PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
    "60e6kgAAAABJRU5ErkJggg=="
)
IMAGE_DATA_URL = "data:image/png;base64," + PNG_BASE64
IMAGE_URL = "https://example.com/cat.png"
TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def case_of(text: str) -> str | None:
    """``"CASE tools"`` → ``"tools"``; None for any other text."""
    text = text.strip()
    if not text.startswith("CASE "):
        return None
    return text[5:].strip()


def reply_text(
    case: str,
    *,
    system: str | None = None,
    turns: int = 0,
    image: str | None = None,
    tool_result: str | None = None,
) -> str:
    """The text reply the script asks for (for the text-replying cases)."""
    if case == "system":
        return f"system:{system}"
    if case == "multiturn":
        return f"turns:{turns}"
    if case in ("image", "image_url"):
        return f"image:{image}"
    if case == "tool_result":
        return f"result:{tool_result}"
    if case == "json":
        return JSON_REPLY
    return "pong"


def error_status(case: str) -> int | None:
    """400 for ``"error_400"`` etc.; None for a non-error case."""
    if case.startswith("error_"):
        return int(case[6:])
    return None


def mime_of_data_url(url: str) -> str:
    """``data:image/png;base64,...`` → ``image/png``."""
    return url[5:].split(";", 1)[0].split(",", 1)[0]


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    json: Any = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProviderHarness(ThreadedApp):
    """Base class: a fake provider server on 127.0.0.1:0 in a background thread.

    Subclasses set the class attributes ``name``/``supports``/``caching`` (and ``api_key``
    if they like), implement ``litellm_params`` and ``routes`` (aiohttp route definitions
    whose handlers call ``await self.record(request)`` first), and may override ``check``.
    """

    name: str = ""
    supports: frozenset[str] = ALL_CASES
    caching: bool = False
    # True for providers that stream a tool call whole (Gemini): stream_tools then expects
    # one argument delta or more instead of two or more.
    whole_tool_calls: bool = False
    api_key: str = "sk-fake-provider-key-0123456789"

    def __init__(self) -> None:
        super().__init__()
        self.thread_name = f"fake-{self.name}"
        self.hits = 0
        self.received: list[Received] = []

    # -- what subclasses provide -------------------------------------------------------
    def litellm_params(self, model_name: str) -> dict[str, Any]:
        raise NotImplementedError

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def check(self, case: str, received: Received) -> None:
        """Provider-specific asserts on what reached the fake for ``case``."""

    # -- plumbing ------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last_received(self) -> Received:
        return self.received[-1]

    def last_request(self) -> dict[str, Any]:
        body = self.received[-1].json
        assert isinstance(body, dict)
        return body

    async def record(self, request: web.Request) -> Received:
        """Count and keep one incoming request; call first in every handler."""
        self.hits += 1
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        received = Received(
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            raw=raw,
            json=parsed,
        )
        self.received.append(received)
        return received

    def start(self) -> None:
        self.start_thread()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self.routes())
        return app


def json_response(payload: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


async def sse_response(
    request: web.Request, events: list[bytes], *, content_type: str = "text/event-stream"
) -> web.StreamResponse:
    """Write each pre-framed event as its own write, so deltas arrive separately."""
    resp = web.StreamResponse(headers={"content-type": content_type})
    await resp.prepare(request)
    for event in events:
        await resp.write(event)
        await asyncio.sleep(0.001)
    await resp.write_eof()
    return resp


def last_user_text(messages: list[dict[str, Any]], role: str = "user") -> str:
    """The text of the last message with ``role`` whose content holds text (OpenAI-ish)."""
    for message in reversed(messages):
        if message.get("role") != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
            if texts:
                return " ".join(str(t) for t in texts)
    return ""
