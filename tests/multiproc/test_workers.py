"""``--workers N`` with the Redis ledger: N processes on one port, one set of limits; without
Redis the command refuses to start and says how to set Redis up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.cache.conftest import RedisServer, own_redis, redis, redis_server  # noqa: F401
from tests.conftest import MASTER_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.multiproc.shared import admin_post, chat, start


async def test_two_workers_share_one_port_and_one_ledger(
    fake_openai: FakeOpenAI,
    redis: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {"TOLLWAY_REDIS_URL": redis.url}
    # The key exists before the workers start: each loads it from the store.
    single = await asyncio.to_thread(start, tmp_path, "setup", fake_openai, env)
    try:
        key = await asyncio.to_thread(admin_post, single, "/key/generate", {"rpm_limit": 4})
    finally:
        await asyncio.to_thread(single.stop)
    gateway = await asyncio.to_thread(
        start, tmp_path, "workers", fake_openai, env, ["--workers", "2"]
    )
    try:
        assert await asyncio.to_thread(_workers, gateway.proc.pid) == 2
        headers = {"authorization": f"Bearer {key['key']}"}
        # A new connection per request, so the kernel hands them to both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{gateway.url}/v1/chat/completions", json=chat(), headers=headers)
                    for _ in range(12)
                )
            )
        assert sorted(r.status_code for r in responses) == [200] * 4 + [429] * 8
    finally:
        await asyncio.to_thread(gateway.stop)


def test_several_workers_without_redis_are_refused_with_how_to_set_it_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env["TOLLWAY_MASTER_KEY"] = MASTER_KEY
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--workers", "2", "--db", str(tmp_path / "t.db")],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"TOLLWAY_REDIS_URL=redis://" in result.stderr


def _workers(pid: int) -> int:
    """The supervisor's child processes that are uvicorn workers (Linux ``/proc``)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()
    return sum(b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes() for child in children)
