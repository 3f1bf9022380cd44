"""The load generators of ``make bench``: locust (one-user rows, stream time to first byte)
and wrk (every row above one user, see bench/wrk.py), and the LiteLLM proxy's install."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from bench.procs import Child, free_port, pin
from bench.wrk import available as wrk_available

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LITELLM_VENV = BENCH_DIR / ".litellm-venv"
LITELLM_PIN = "litellm[proxy]==1.83.8"
MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
USER_CLASSES = {"non-stream": "ChatUser", "stream": "StreamChatUser"}


def loadgen() -> str:
    """``BENCH_LOADGEN``: ``wrk`` (default when installed) drives every row above one user;
    ``locust`` drives every row. One-user rows always run on locust (stream TTFB)."""
    chosen = os.environ.get("BENCH_LOADGEN", "wrk" if wrk_available() else "locust")
    if chosen not in ("wrk", "locust"):
        raise SystemExit(f"BENCH_LOADGEN: {chosen!r} is not wrk or locust")
    if chosen == "wrk" and not wrk_available():
        raise SystemExit("BENCH_LOADGEN=wrk but wrk is not installed (apt-get install -y wrk)")
    return chosen


# The metric a wrk row reports per scenario (wrk times whole responses only).
WRK_METRICS = {"non-stream": "chat", "stream": "stream-total"}


def ensure_litellm() -> Path | None:
    """``bench/.litellm-venv/bin/litellm``, installing the pinned release if needed."""
    litellm = LITELLM_VENV / "bin" / "litellm"
    python = LITELLM_VENV / "bin" / "python"
    if litellm.exists():
        check = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.stdout.strip() == LITELLM_PIN.split("==")[1]:
            return litellm
    print(f"installing {LITELLM_PIN} into {LITELLM_VENV} (not a project dependency) ...")
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, timeout=300
            )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", LITELLM_PIN],
            check=True,
            timeout=1200,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"LiteLLM comparison skipped: installing {LITELLM_PIN} failed: {exc}")
        return None
    if not litellm.exists():
        print(f"LiteLLM comparison skipped: {litellm} missing after install")
        return None
    return litellm


def start_litellm(litellm: Path, config: Path, work: Path, cpus: set[int] | None) -> Child:
    """The LiteLLM proxy (``litellm``, from ``ensure_litellm``) with ``config``, one worker,
    on a free port, pinned to ``cpus``; returns once ``/health/liveliness`` answers (its URL
    is ``.url``). Its settings are its defaults but for a quiet log and the bundled price map."""
    port = free_port()
    proxy = Child(
        "litellm",
        [
            str(litellm),
            *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
            *("--num_workers", "1"),
        ],
        work,
        dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR"),
    )
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        proxy.wait_ready(proxy.url + "/health/liveliness", 180)
    except BaseException:
        proxy.stop()
        raise
    pin(proxy.pid, cpus)
    return proxy


def run_locust(
    *,
    scenario: str,
    users: int,
    seconds: int,
    host: str,
    key: str,
    work: Path,
    tag: str,
    cpus: set[int] | None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One bounded headless locust run; returns its full-precision raw record."""
    prefix = work / f"locust-{tag}"
    raw_path = work / f"raw-{tag}.json"
    env = dict(
        os.environ,
        BENCH_KEY=key,
        BENCH_MODEL=MODEL,
        BENCH_PATH=CHAT_PATH,
        BENCH_RAW_OUT=str(raw_path),
        PYTHONPATH=str(ROOT),
        **(extra_env or {}),
    )
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(BENCH_DIR / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        USER_CLASSES[scenario],
    ]
    with open(work / f"locust-{tag}.log", "wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        try:
            if cpus is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(process.pid, cpus)
            process.wait(timeout=seconds + 60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if not raw_path.exists():
        log_text = (work / f"locust-{tag}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust run {tag} wrote no results; its log:\n{log_text}")
    raw: dict[str, Any] = orjson.loads(raw_path.read_bytes())
    return raw
