"""A gateway database at production volume, built inside SQLite with recursive CTEs.

100,000 keys in 100 teams, 1,000 users, and 10,000,000 spend-log rows spread over the
year before ``END`` (one every ~3 s), across 10 models. The spend-log indexes are dropped
while the rows go in and re-created from the schema's own SQL afterwards (a sorted build is
much faster than 10M random inserts into the per-key index), so the indexes are exactly
the migrations'.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from proxy.store import Store

KEYS = 100_000
TEAMS = 100
USERS = 1_000
MODELS = 10
END = 1_790_000_000.0  # 2026-09-21: the newest row
SPAN_S = 365 * 86400


def key_hash_sql(expr: str) -> str:
    """The token_hash of seeded key number ``expr`` (64 hex digits)."""
    return f"printf('%064x', {expr})"


def seeded_key_hash(n: int) -> str:
    return f"{n:064x}"


def build(path: Path, rows: int) -> float:
    """Create the database at ``path``; returns the seconds it took."""
    started = time.perf_counter()
    asyncio.run(_migrate(path))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -262144")
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("BEGIN")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO teams (team_id, team_alias, models, members, metadata, spend, "
            "created_at) SELECT 'team-' || i, 'Team ' || i, '[]', '[]', '{}', 0, ? + i FROM n",
            (TEAMS, END - SPAN_S),
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO users (user_id, user_email, models, metadata, spend, created_at) "
            "SELECT 'user-' || i, 'user' || i || '@example.com', '[]', '{}', 0, ? + i FROM n",
            (USERS, END - SPAN_S),
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"INSERT INTO keys (token_hash, key_alias, key_name, team_id, user_id, models, "
            "metadata, tags, spend, max_budget, created_at) "
            f"SELECT {key_hash_sql('i')}, 'key-' || i, 'sk-...' || printf('%04d', i % 10000), "
            "'team-' || (i % ? + 1), 'user-' || (i % ? + 1), '[]', '{}', '[]', 0, 100.0, "
            "? + i FROM n",
            (KEYS, TEAMS, USERS, END - SPAN_S),
        )
        indexes = [
            sql
            for (sql,) in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spend_logs' "
                "AND sql IS NOT NULL"
            )
        ]
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spend_logs' "
            "AND sql IS NOT NULL"
        ).fetchall():
            db.execute(f"DROP INDEX {name}")
        step = SPAN_S / rows
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1) "
            "INSERT INTO spend_logs (request_id, call_id, key_hash, user_id, team_id, model, "
            "deployment, prompt_tokens, completion_tokens, cached_tokens, total_tokens, cost, "
            "latency_ms, status, status_code, tags, estimated, start_time, end_time) "
            "SELECT printf('r%010d', i), printf('c%010d', i), "
            f"{key_hash_sql('(i * 7919) % ? + 1')}, "
            "'user-' || ((i * 7919) % ? % ? + 1), 'team-' || ((i * 7919) % ? % ? + 1), "
            "'model-' || (i % ?), 'openai/model-' || (i % ?), 100, 20, 0, 120, 0.00012, "
            "250.0, 'success', 200, '[]', 0, ? + i * ?, ? + i * ? + 0.25 FROM n",
            (
                rows,
                KEYS,
                KEYS,
                USERS,
                KEYS,
                TEAMS,
                MODELS,
                MODELS,
                END - SPAN_S,
                step,
                END - SPAN_S,
                step,
            ),
        )
        db.execute("COMMIT")
        for sql in indexes:
            db.execute(sql)
    finally:
        db.close()
    return time.perf_counter() - started


def _target(rows: int) -> Path:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    folder = resources.files("proxy.store").joinpath("migrations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        digest.update(entry.name.encode() + entry.read_bytes())
    name = f"tollway-ui-seed-{rows}-{digest.hexdigest()[:12]}"
    return (
        Path(os.environ.get("TOLLWAY_UI_SEED_DIR") or tempfile.gettempdir()) / name / "tollway.db"
    )


def cached(rows: int) -> tuple[Path, float]:
    """The seeded database in the temp folder, built on first use (~140 s for 10M rows on
    a 2-core machine) and reused by later runs while this file and the migrations are
    unchanged. Returns its path and the seconds spent building (0 when reused)."""
    target = _target(rows)
    home = target.parent
    if target.exists():
        return target, 0.0
    home.mkdir(parents=True, exist_ok=True)
    for stale in home.glob("building-*.db*"):
        if not _alive(int(stale.name.split("-")[1].split(".")[0])):
            stale.unlink(missing_ok=True)  # left by a run that was killed
    partial = home / f"building-{os.getpid()}.db"
    seconds = build(partial, rows)
    partial.replace(target)
    return target, seconds


_background: subprocess.Popen[bytes] | None = None


def start_in_background(rows: int) -> None:
    """Start building the seeded database in another process, so a test session that will
    need it builds it on the second core while the other tests run (no-op when cached)."""
    global _background
    if _background is None and not _target(rows).exists():
        _background = subprocess.Popen(
            [sys.executable, "-m", "tests.ui.seed", str(rows)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def wait_for_background() -> None:
    """Wait for the build started by :func:`start_in_background`, if any."""
    global _background
    if _background is not None:
        _background.wait()
        _background = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _migrate(path: Path) -> None:
    store = await Store.open(str(path))
    await store.close()


if __name__ == "__main__":
    cached(int(sys.argv[1]))
