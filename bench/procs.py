"""Child processes for the benchmark: start, wait for the listening line, sample RSS, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

_LISTENING = re.compile(r"listening on (http://\S+)")


class Child:
    """A server started in its own session, so stopping it also stops anything it forked."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.url = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_listening(self, timeout: float) -> str:
        """The URL from the child's ``... listening on http://HOST:PORT`` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.tail()}")

    def wait_ready(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; its log:\n{self.tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready at {url} after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(grace)
        self._log.close()


def free_port() -> int:
    """A port that was free a moment ago, for servers that cannot bind port 0 themselves."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict ``pid`` and all its threads to ``cpus`` (no-op when None)."""
    if cpus is None:
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), cpus)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    return found


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` plus all its descendants (a worker-per-process server counts whole)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{current}/status") as file:
                for line in file:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            stack.extend(_children(current))
    return total


class RSSSampler:
    """Peak RSS of a process tree while the ``with`` block runs, sampled every ``interval``."""

    def __init__(self, pid: int | None, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            if self.pid is not None:
                self.peak = max(self.peak, tree_rss_bytes(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def neutral_workdir(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh work folder, and the environment for gateways started from it: this process
    leaves the checkout first (``python -m proxy`` run inside one imports that checkout,
    whatever ``PYTHONPATH`` says), and ``PYTHONPATH`` names this checkout."""
    os.chdir(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix=prefix))
    return work, dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))


def start_upstream(work: Path, env: dict[str, str], cpus: set[int] | None) -> Child:
    """The fast fake OpenAI upstream (``bench/upstream.py``) on port 0, pinned to ``cpus``;
    returns once it listens (its URL is ``.url``)."""
    upstream = Child("upstream", [sys.executable, "-m", "bench.upstream", "--port", "0"], work, env)
    try:
        upstream.wait_listening(10)
    except BaseException:
        upstream.stop()
        raise
    pin(upstream.pid, cpus)
    return upstream


def start_gateway(
    work: Path, config_text: str, env: dict[str, str], name: str = "tollway", **extra_env: str
) -> Child:
    """Tollway on port 0 with ``config_text`` and a throw-away SQLite file in ``work``;
    returns once it is ready (its URL is ``.url``). ``name`` names its config, database and
    log (``<name>.yaml``, ``<name>.db``, ``<name>.log``), so several gateways can share
    ``work``."""
    config_path = work / f"{name}.yaml"
    config_path.write_text(config_text)
    gateway_env = dict(
        env, TOLLWAY_DB=str(work / f"{name}.db"), TOLLWAY_LOG_LEVEL="warning", **extra_env
    )
    gateway = Child(
        name,
        [sys.executable, "-m", "proxy", "--config", str(config_path), "--port", "0"],
        work,
        gateway_env,
    )
    try:
        url = gateway.wait_listening(30)
        gateway.wait_ready(url + "/health/readiness", 30)
    except BaseException:
        gateway.stop()
        raise
    return gateway
