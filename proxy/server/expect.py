"""Two HTTP/1.x details the server and the app settle together (see ``uvicorn_protocol``;
under granian, ``expect_first`` and granian itself):

- ``Expect: 100-continue``: uvicorn and granian answer ``100 Continue`` on the app's first
  ``receive()``. The inference routes read the body before they authenticate (the
  connection stays usable), so for a request that expects a 100 the server runs
  ``ExpectGate`` first: the key (from the headers) and the declared ``Content-Length`` are
  checked before anything is received, and a refusal (401, 403, 413) is answered at once
  with ``connection: close`` — the client never uploads a body that was refused. Only an
  authenticated request that fits gets its ``100 Continue``. The side endpoints
  (``endpoints/``) authenticate before their first ``receive()`` anyway.
- HTTP/1.0 has no chunked encoding: a streamed reply to an HTTP/1.0 request is written
  close-delimited (no ``Content-Length``, no ``Transfer-Encoding``; the connection's close
  ends the body, RFC 9112 §6.3) by ``close_delimited`` (granian does so itself, answering
  as HTTP/1.0).

Neither costs an ordinary HTTP/1.1 request anything: the server wraps only the requests
that carry ``Expect`` or speak HTTP/1.0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, runtime_checkable

from ..auth import Authenticator
from ..errors import BodyTooLarge, InvalidRequest, PermissionDenied, TollwayError
from ..pipeline.route import InferenceRoute

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@runtime_checkable
class ExpectAware(Protocol):
    """An app that can decide an ``Expect: 100-continue`` request from its headers."""

    expect_continue: ASGIApp


class Routes(Protocol):
    def match(self, scope: Scope) -> InferenceRoute | None: ...


class ExpectGate:
    """The app's entry for requests that expect a 100: refuse from the headers when they
    decide, else hand over to ``app`` (whose first ``receive()`` sends the 100)."""

    def __init__(self, app: ASGIApp, routes: Routes, auth: Authenticator, max_body: int) -> None:
        self.app = app
        self.routes = routes
        self.auth = auth
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.match(scope) if scope["type"] == "http" else None
        if route is not None and scope["method"] == "POST":
            refusal = self._refusal(scope, route)
            if refusal is not None:
                await _refuse(send, route, refusal)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, route: InferenceRoute) -> TollwayError | None:
        authorization = api_key = length = None
        key_headers = route.inbound.key_headers
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key" or name in key_headers:
                api_key = value
            elif name == b"content-length":
                length = value
        try:
            principal = self.auth.authenticate(authorization, api_key)
            if not principal.may_infer:
                raise PermissionDenied("this key may not call models", code="key_type")
            if length is not None:
                try:
                    declared = int(length)
                except ValueError:
                    raise InvalidRequest("invalid content-length header") from None
                if declared > self.max_body:
                    raise BodyTooLarge(
                        f"request body of {declared} bytes exceeds the {self.max_body}-byte limit"
                    )
        except TollwayError as exc:
            return exc
        return None


async def _refuse(send: Send, route: InferenceRoute, exc: TollwayError) -> None:
    inbound = route.inbound
    body = inbound.error_body(exc)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The body was never asked for: the connection cannot carry another request.
        (b"connection", b"close"),
        *((k.encode(), v.encode()) for k, v in exc.headers.items()),
        *inbound.error_headers(exc),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Framing(Protocol):
    """What ``close_delimited`` sets on the server's request cycle (uvicorn's names)."""

    chunked_encoding: bool | None
    expected_content_length: int


def close_delimited(app: ASGIApp, cycle: Framing) -> ASGIApp:
    """``app`` for an HTTP/1.0 request: a reply without a length is written as it comes
    and ended by the close (the server closes HTTP/1.0 connections after each reply)."""

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        delimited = False

        async def framed(message: Message) -> None:
            nonlocal delimited
            if message["type"] == "http.response.start":
                status = message["status"]
                has_length = any(
                    name.lower() in (b"content-length", b"transfer-encoding")
                    for name, _ in message.get("headers", ())
                )
                if not has_length and scope["method"] != "HEAD" and status not in (204, 304):
                    # Not chunked: the server then writes each body as it is.
                    cycle.chunked_encoding = False
                    delimited = True
            elif delimited and message["type"] == "http.response.body":
                # The server checks each body against a declared length; this one's is
                # its own size, and nothing is left owing when the last one is written.
                cycle.expected_content_length = len(message.get("body", b""))
            await send(message)

        await app(scope, receive, framed)

    return run


def expect_first(app: ASGIApp) -> ASGIApp:
    """``app`` for a server that answers ``100 Continue`` on the app's first ``receive()``
    but has no hook of its own to run ``ExpectGate`` first (granian): the requests that
    carry ``Expect`` go through ``app.expect_continue``; every other scope is ``app``'s."""
    aware = app if isinstance(app, ExpectAware) else None

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        if aware is not None and scope["type"] == "http":
            for name, _value in scope["headers"]:
                if name == b"expect":
                    # Looked up per request: a config reload replaces the gate.
                    await aware.expect_continue(scope, receive, send)
                    return
        await app(scope, receive, send)

    return run
