"""An aiohttp app served on 127.0.0.1, port 0, by its own event loop in a daemon thread.

The fakes that gateway processes talk to subclass it: the test's own loop (function scoped,
watched by blockbuster) never runs them, and a session-scoped fake outlives every test loop.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class ThreadedApp:
    thread_name = "fake"
    # Keep-alive connections are shut down too on stop (not only closed once idle).
    shutdown_connections = False

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()

    def build_app(self) -> web.Application:
        raise NotImplementedError

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._serve())
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            if self.shutdown_connections:
                await self._runner.shutdown()
            await self._runner.cleanup()
