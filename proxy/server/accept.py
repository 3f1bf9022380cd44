"""Fair accept: every waiting connection is taken each loop turn (up to a bound), not one.

Under load uvloop's server accepts one connection per event-loop iteration (strace of the
gateway at 1,000 connections: 27 ``epoll_pwait`` and 27 ``accept4`` in 2 s, never an
``EAGAIN``). When each iteration carries hundreds of requests (~70 ms), connections that
arrive in a burst wait in the kernel's accept queue for seconds: ``ss`` showed ~480 of
1,000 still unaccepted after 7 s, and wrk's p99 was 5 s with a 10 s maximum while the
median was 180 ms. Here a reader on the listening socket accepts until the queue is empty
or ``ACCEPT_BATCH`` connections were taken in this turn, and hands each socket to the loop
(``connect_accepted_socket``) with uvicorn's protocol, so a burst is inside the server, and
served in order, within a loop turn or two.

``EagerServer`` is uvicorn's ``Server`` with that listener in place of ``loop.create_server``
for the sockets it is given; lifespan, signals, the connection set, graceful shutdown and
the protocol (Tollway's, ``uvicorn_protocol.py``) are uvicorn's. Errors ``accept`` can
raise when the process is out of descriptors or memory pause accepting for a moment (as
asyncio does) instead of spinning.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

log = logging.getLogger("tollway")

# Connections accepted per loop turn at most: a burst is taken in a few turns, and a turn's
# accept work stays bounded next to the requests it serves.
ACCEPT_BATCH = 256
# Out of descriptors (or memory): accepting again after this long.
ACCEPT_RETRY_S = 0.5
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class EagerListener:
    """Accepts from ``sock`` in batches and adopts each connection into the running loop;
    has the ``close``/``wait_closed`` of the asyncio ``Server`` uvicorn keeps."""

    def __init__(
        self, sock: socket.socket, protocol_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self._adopting: set[asyncio.Task[None]] = set()
        self._closed = False
        self._paused = False
        self.accepted = 0
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    log.warning("cannot accept connections for now: %s", exc.strerror)
                    self._pause()
                    return
                raise
            self.accepted += 1
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._adopt(conn))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    async def _adopt(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception as exc:
            log.debug("dropped an accepted connection: %s", exc)
            conn.close()

    def _pause(self) -> None:
        if self._closed or self._paused:
            return
        self._paused = True
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_later(ACCEPT_RETRY_S, self._resume)

    def _resume(self) -> None:
        if self._closed or not self._paused:
            return
        self._paused = False
        self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (connections already accepted are left to finish)."""
        if self._closed:
            return
        self._closed = True
        if not self._paused:
            self._loop.remove_reader(self._sock.fileno())

    async def wait_closed(self) -> None:
        if self._adopting:
            await asyncio.gather(*self._adopting, return_exceptions=True)


class EagerServer(uvicorn.Server):
    """uvicorn's server with ``EagerListener`` on the sockets it is given."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            await super().startup(sockets)
            return
        # No sockets for uvicorn to listen on; then the listeners, with the protocol
        # factory uvicorn's own startup builds.
        await super().startup(sockets=[])
        if not self.started:
            return
        config = self.config
        protocol_class: Any = config.http_protocol_class
        factory = functools.partial(
            protocol_class,
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        listeners = [EagerListener(sock, factory) for sock in sockets]
        self.servers = listeners  # type: ignore[assignment]
