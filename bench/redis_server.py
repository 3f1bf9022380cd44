"""A throw-away ``redis-server`` for the bench targets that run on the shared Redis ledger."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from bench.procs import Child, free_port


def start_redis(work: Path, env: dict[str, str]) -> Child:
    """``redis-server`` on a free port without persistence; ``.url`` is its redis:// URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "the redis and workers2 bench targets need redis-server (make redis-server)"
        )
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = Child("redis", argv, work, env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    redis.url = f"redis://127.0.0.1:{port}/0"
                    return redis
        except OSError:
            time.sleep(0.05)
    redis.stop()
    raise RuntimeError(f"redis-server did not start; its log:\n{redis.tail()}")
