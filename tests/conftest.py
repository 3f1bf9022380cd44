"""Shared fixtures: a fake OpenAI upstream and real gateway processes, all on port 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from tests.fakes.openai_upstream import FakeOpenAI

MASTER_KEY = "sk-tollway-master-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-secret-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test that makes a blocking call on a running event loop."""
    with blockbuster_ctx() as bb:
        yield bb


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=UPSTREAM_KEY)
    server.start()
    yield server
    server.stop()


def gateway_config(upstream: FakeOpenAI, dead_port: int) -> str:
    base = upstream.base_url
    entries = [
        ("gpt-test", "openai/fake-ok", base, {}),
        ("fake-ok", "openai/fake-ok", base, {}),
        ("legacy", "openai/fake-ok", base, {}),
        ("embed-test", "openai/fake-embed", base, {}),
        ("slow", "openai/fake-slow-stream", base, {}),
        ("medium", "openai/fake-medium-stream", base, {}),
        ("bad-request", "openai/fake-400", base, {}),
        ("leaky-401", "openai/fake-401", base, {}),
        ("throttled", "openai/fake-429", base, {}),
        ("upstream-500", "openai/fake-500", base, {}),
        ("stream-break", "openai/fake-stream-break", base, {}),
        ("hang", "openai/fake-hang", base, {"timeout": 0.5}),
        ("unreachable", "openai/fake-ok", f"http://127.0.0.1:{dead_port}/v1", {}),
    ]
    lines = ["model_list:"]
    for name, model, api_base, extra in entries:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: {model}",
            f"      api_base: {api_base}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
        ]
        lines += [f"      {k}: {v}" for k, v in extra.items()]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    return "\n".join(lines) + "\n"


class GatewayProcess:
    """``tollway`` in a subprocess on port 0; its stderr (the logs) is kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"gateway did not start: {line!r}\n{self.logs()}")
        self.url = line.strip().rsplit(" ", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/readiness", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway never became ready\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def start_gateway(
    tmp: Path,
    config_text: str | None,
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> GatewayProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY"):
        env.pop(name, None)
    env.update(
        {
            "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
            "TEST_MASTER_KEY": MASTER_KEY,
            "TOLLWAY_DB": str(tmp / "tollway.db"),
            "TOLLWAY_CONNECT_TIMEOUT_S": "1",
        }
    )
    # ``TEST_TOLLWAY_SERVER=raw pytest ...`` runs the gateway tests on another server.
    if os.environ.get("TEST_TOLLWAY_SERVER"):
        env["TOLLWAY_SERVER"] = os.environ["TEST_TOLLWAY_SERVER"]
    env.update(extra_env or {})
    argv = list(args or [])
    if config_text is not None:
        config_path = tmp / "config.yaml"
        config_path.write_text(config_text)
        argv += ["--config", str(config_path)]
    return GatewayProcess(argv, env, tmp / "gateway.log")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    proc = start_gateway(tmp, gateway_config(fake_openai, free_port()))
    yield proc
    proc.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {MASTER_KEY}"}


def chat_body(model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Say hello"}], **extra}


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the UI scale test is selected, start building its 10M-row database now, in
    another process, so it is built on the second core while the rest of the suite runs."""
    if any(item.nodeid.startswith("tests/ui/test_scale.py") for item in session.items):
        from tests.ui import seed, test_scale

        seed.start_in_background(test_scale.ROWS)
