"""``TOLLWAY_SERVER=raw``: Tollway's uvicorn protocol with a short path for the inference POSTs.

The profile of a JSON chat call at 32 connections put about a fifth of the gateway's own CPU
in the server layer: the scope (a dict of eleven entries and a copy of the app state),
``httptools.parse_url``, the app's dispatch on the path, two timers created and cancelled per
request (header deadline, keep-alive), and on every reply a header loop with two regular
expressions per field. For a request the gateway answers from its exact route table none of
that is needed:

- the target is taken as it is when it is a plain path (origin form, no query, no ``%``)
  and looked up in the app's exact routes (its ``fast_route(path)``, ``server/app.py``); the
  route's ASGI callable is run with a minimal scope (no ``state``, no ``path_params``);
- the reply head is joined without a Python loop per field; uvicorn's checks are kept, made
  once over all values (control bytes) and, for names other than the gateway's own, once over
  all names;
- the header and keep-alive deadlines are timestamps under one timer per connection.

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


# Stands in the parent's ``_header_timer`` while a header deadline is set (it only asks
# whether one is); the deadline itself is ``RawProtocol._header_due``.
_ARMED = cast(asyncio.TimerHandle, object())


class RawProtocol(TollwayHttpToolsProtocol, _ShortPath):
    """The protocol ``TOLLWAY_SERVER=raw`` runs (see the module docstring).

    The header deadline and the keep-alive deadline are two timestamps under one timer per
    connection instead of a timer created and cancelled for each (two ``call_later`` and
    two cancels per request, as much CPU as the reply's head): setting a deadline is a
    store, and the timer, when it fires, acts on what is due and re-arms for the rest.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_due = 0.0  # 0: none
        self._idle_due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection over the limit has the 503 app instead: it never takes the short path.
        # The app's ``fast_route(path)`` names the ASGI callable that serves ``POST path``.
        if not self.root_path:
            self.fast = getattr(self.app, "fast_route", None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # Nothing may keep a closed connection alive (see ``uvicorn_protocol.py``, 1.).
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive deadline as a timestamp.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_due = 0.0
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_due = self.loop.time() + self.timeout_keep_alive
            self._schedule(self._idle_due)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_due = 0.0

    def _arm_header_timer(self) -> None:
        if self.header_timeout_s > 0:
            self._header_timer = _ARMED
            self._header_due = self.loop.time() + self.header_timeout_s
            self._schedule(self._header_due)

    def _cancel_header_timer(self) -> None:
        self._header_timer = None
        self._header_due = 0.0

    def _schedule(self, due: float) -> None:
        timer = self._timer
        if timer is None or due < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._on_timer)
            self._timer_at = due

    def _on_timer(self) -> None:
        self._timer = None
        # The loop's clock may read a hair before the time asked for.
        now = self.loop.time() + 0.001
        if self._header_due and now >= self._header_due:
            self._header_due = 0.0
            self._header_timeout()
        if self._idle_due and now >= self._idle_due:
            self._idle_due = 0.0
            self.timeout_keep_alive_handler()
        if self.transport.is_closing():
            return
        pending = [due for due in (self._header_due, self._idle_due) if due]
        if pending:
            self._schedule(min(pending))
