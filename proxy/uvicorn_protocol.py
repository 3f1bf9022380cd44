"""uvicorn's httptools protocol, minus one leak.

uvicorn cancels a connection's keep-alive timer in ``connection_lost`` only when the
connection closed cleanly. A client that resets the connection (an aborted stream, a load
balancer) leaves the timer pending, and the timer keeps the whole connection — protocol,
request cycle, headers — alive until it fires (``timeout_keep_alive`` seconds). The soak run
showed thousands of dead connections held that way and RSS climbing with the abort rate.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TollwayHttpToolsProtocol(HttpToolsProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._unset_keepalive_if_required()
