"""``TOLLWAY_SERVER=raw``: Tollway's uvicorn protocol with a short path for the inference POSTs.

The profile of a JSON chat call at 32 connections put about a fifth of the gateway's own CPU
in the server layer: the scope (a dict of eleven entries and a copy of the app state),
``httptools.parse_url``, the app's dispatch on the path, and on every reply a header loop with
two regular expressions per field (the lean reply head, and one timer per connection for the
header and keep-alive deadlines, have since moved into the default protocol). For a request
the gateway answers from its exact route table none of that is needed:

- the target is taken as it is when it is a plain path (origin form, no query, no ``%``)
  and looked up in the app's exact routes (its ``fast_route(path)``, ``server/app.py``); the
  route's ASGI callable is run with a minimal scope (no ``state``, no ``path_params``);
- the reply head is joined without a Python loop per field; uvicorn's checks are kept, made
  once over all values (control bytes) and, for names other than the gateway's own, once over
  all names.

Everything else is the parent's, unchanged: parsing (httptools), the RFC 9112 refusals, the
header deadline's rules, the connection limit, half-close, pipelining (a short-path request
waits in the same queue), flow control, graceful shutdown (the task is in the server's task
set) and the answer to an app error. A request the short path does not take — another method
or path, a query string, HTTP/1.0, ``Connection: close``, ``Expect``, a connection over the
limit — gets uvicorn's full scope and cycle, as with ``TOLLWAY_SERVER=uvicorn``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .uvicorn_protocol import RawCycle, TollwayHttpToolsProtocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class _ShortPath(HttpToolsProtocol):
    """Sits under ``TollwayHttpToolsProtocol`` in the class order: its checks run first, and
    its ``super()`` calls land here (see ``RawProtocol``)."""

    fast: Callable[[str], ASGIApp | None] | None = None

    def on_message_begin(self) -> None:
        # The scope is built once the head is whole, and only in full for uvicorn's path.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        parser = self.parser
        fast = self.fast
        url = self.url
        route = None
        if (
            fast is not None
            and not self.expect_100_continue
            and url[:1] == b"/"
            and b"?" not in url
            and b"%" not in url
            and parser.get_method() == b"POST"
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not parser.should_upgrade()
        ):
            path = url.decode("latin-1")
            route = fast(path)
        if route is None:
            self.scope = self._uvicorn_scope()
            super().on_headers_complete()
            return
        self.scope = scope = {  # type: ignore[assignment]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "path": path,
            "raw_path": url,
            "query_string": b"",
            "root_path": self.root_path,
            "headers": self.headers,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
        }
        existing = self.cycle
        self.cycle = cycle = RawCycle(
            scope=cast(Any, scope),
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=True,
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, cast(Any, route))
        else:
            # Pipelined behind an unfinished reply: queued as uvicorn queues its own.
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, cast(Any, route)))

    def _uvicorn_scope(self) -> Any:
        """The scope uvicorn's ``on_message_begin`` builds (its ``on_headers_complete`` adds
        method, path and query)."""
        return {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }


class RawProtocol(TollwayHttpToolsProtocol, _ShortPath):
    """The protocol ``TOLLWAY_SERVER=raw`` runs (see the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection over the limit has the 503 app instead: it never takes the short path.
        # The app's ``fast_route(path)`` names the ASGI callable that serves ``POST path``.
        if not self.root_path:
            self.fast = getattr(self.app, "fast_route", None)
