"""``make bench-micro`` rows for the spend-log writer: what one row costs the SQLite thread.

The rows go into a fresh SQLite file with Tollway's schema (every migration, so every index)
in WAL mode, 800 per transaction (a 200 ms flush at 4,000 requests/s), the way
``Store.apply_flush`` writes them, beside ``executemany`` (one step per row) for reference.
"""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from proxy.store.sqlite import _LOGS, SpendLogRow, write_flush

BATCH = 800


def _database() -> sqlite3.Connection:
    path = Path(tempfile.mkdtemp(prefix="tollway-micro-")) / "spend.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    migrations = resources.files("proxy.store") / "migrations"
    for script in sorted(migrations.iterdir(), key=lambda f: f.name):
        if script.name.endswith(".sql"):
            db.executescript(script.read_text())
    return db


_IDS = itertools.count()


def spend_log_rows(count: int) -> list[SpendLogRow]:
    """``count`` spend-log rows like a bench request's, each with a request id of its own."""
    now = time.time()
    return [
        SpendLogRow(
            request_id=f"micro{n:010x}",
            call_id=f"call-{n}",
            key_hash="ab" * 32,
            model="bench-model",
            deployment="openai/bench-model",
            prompt_tokens=250,
            completion_tokens=64,
            total_tokens=314,
            cost=0.000378,
            latency_ms=1.4,
            status_code=200,
            start_time=now,
            end_time=now + 0.0014,
            response_id="chatcmpl-bench",
        )
        for n in itertools.islice(_IDS, count)
    ]


def store_stages() -> list[tuple[str, str, Callable[[], object], int]]:
    db = _database()

    def batch() -> list[SpendLogRow]:
        return spend_log_rows(BATCH)

    def flush() -> None:
        write_flush(db, {}, _LOGS.batch_inserts(batch()))

    def flush_executemany() -> None:
        params: list[Any] = [_LOGS.to_params(row) for row in batch()]
        columns = ", ".join(_LOGS.columns)
        marks = ", ".join("?" * len(_LOGS.columns))
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            f"INSERT INTO spend_logs ({columns}) VALUES ({marks}) "
            "ON CONFLICT(request_id) DO NOTHING",
            params,
        )
        db.execute("COMMIT")

    return [
        ("store", f"spend-log flush, {BATCH} rows a transaction (per row)", flush, BATCH),
        ("store", "  the same with executemany, one step per row", flush_executemany, BATCH),
    ]
