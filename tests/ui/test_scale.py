"""The pages' API calls work on a big gateway: 100,000 keys and 10,000,000 spend-log rows in
SQLite (``tests/ui/seed.py``, built once per session inside SQLite).

Each call the UI makes for a page runs through the real app (ASGI, real SQLite; the usage
page makes one report call per day of its range, grouped as chosen, by tag too) and must
answer 200 with the seeded data in it; the query plans are checked too: no spend-log query
the UI makes scans the table (a missing index costs seconds, not milliseconds). How fast
each call is (the 300 ms budget) is a benchmark, not a test: ``python -m bench.ui_scale``
times the same calls on the same database.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.inprocess import InProcessGateway, bearer
from tests.ui import seed

ROWS = int(os.environ.get("TOLLWAY_UI_SEED_ROWS", "10000000"))
CONFIG = (
    "model_list:\n"
    + "".join(
        f"  - model_name: model-{i}\n    litellm_params:\n      model: mock/model-{i}\n"
        for i in range(seed.MODELS)
    )
    + "general_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
)


def day(offset_days: float) -> str:
    return datetime.fromtimestamp(seed.END - offset_days * 86400, UTC).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def seeded() -> Path:
    seed.wait_for_background()  # started by tests/conftest.py when this module was collected
    path, seconds = seed.cached(ROWS)
    print(f"\n{seed.KEYS} keys and {ROWS} spend-log rows: built in {seconds:.1f} s ({path})")
    return path.parent


@pytest.fixture
async def client(seeded: Path) -> AsyncIterator[httpx.AsyncClient]:
    gateway = await InProcessGateway.build(seeded, CONFIG)
    async with gateway.running() as http:
        yield http


def page_calls() -> dict[str, tuple[str, dict[str, str | int]]]:
    key = seed.seeded_key_hash(4242)
    return {
        "keys, first page": ("/key/list", {"page": 1, "size": 25, "return_full_object": "true"}),
        "keys, last page": ("/key/list", {"page": 4000, "size": 25, "return_full_object": "true"}),
        "keys of a team": ("/key/list", {"team_id": "team-7", "return_full_object": "true"}),
        "teams": ("/team/list", {}),
        "teams, first page": ("/team/list", {"page": 1, "page_size": 25}),
        "users": ("/user/list", {"page": 1, "page_size": 25}),
        "logs, first page": ("/spend/logs", {"page": 1, "page_size": 50}),
        "logs, page 100": ("/spend/logs", {"page": 100, "page_size": 50}),
        "logs of a key": ("/spend/logs", {"api_key": key, "page_size": 50}),
        "logs of a team in a week": (
            "/spend/logs",
            {"team_id": "team-3", "start_date": day(7), "end_date": day(0), "page_size": 50},
        ),
        "logs of a model": ("/spend/logs", {"model": "model-3", "page_size": 50}),
        "logs of a user": ("/spend/logs", {"user_id": "user-9", "page_size": 50}),
        "usage, one day by model": (
            "/global/spend/report",
            {"group_by": "model", "start_date": day(1), "end_date": day(1)},
        ),
        "usage, one day by team": (
            "/global/spend/report",
            {"group_by": "team", "start_date": day(1), "end_date": day(1)},
        ),
        "usage, one day by user": (
            "/global/spend/report",
            {"group_by": "user", "start_date": day(1), "end_date": day(1)},
        ),
        "usage, one day by key": (
            "/global/spend/report",
            {"group_by": "key", "start_date": day(1), "end_date": day(1)},
        ),
        "usage, one day by tag": (
            "/global/spend/report",
            {"group_by": "tag", "start_date": day(1), "end_date": day(1)},
        ),
        # The page asks up to 366 days, one at a time: the oldest is no slower.
        "usage, a day a year ago": (
            "/global/spend/report",
            {"group_by": "model", "start_date": day(364), "end_date": day(364)},
        ),
        "models": ("/model/info", {}),
    }


# Building the 10M-row database takes ~140 s the first time (it is cached for later runs).
@pytest.mark.timeout(900)
async def test_every_page_call_answers_with_the_seeded_data_at_100k_keys_and_10m_logs(
    client: httpx.AsyncClient,
) -> None:
    for name, (path, params) in page_calls().items():
        response = await client.get(path, params=params, headers=bearer())
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert body, name  # every page has data at this scale
        if path == "/key/list" and "team_id" not in params:
            assert body["total_count"] == seed.KEYS, name


@pytest.mark.timeout(900)
def test_the_spend_log_queries_use_an_index(seeded: Path) -> None:
    db = sqlite3.connect(seeded / "tollway.db")
    try:
        queries = [
            "SELECT * FROM spend_logs ORDER BY start_time DESC, rowid DESC LIMIT 50",
            "SELECT * FROM spend_logs WHERE key_hash = 'x' ORDER BY start_time DESC, rowid DESC"
            " LIMIT 50",
            "SELECT * FROM spend_logs WHERE team_id = 'x' AND start_time >= 1 AND start_time < 2"
            " ORDER BY start_time DESC, rowid DESC LIMIT 50",
            "SELECT model, SUM(cost) FROM spend_logs WHERE start_time >= 1 AND start_time < 2"
            " GROUP BY model",
            # The tag breakdown reads a JSON column.
            "SELECT tags, SUM(cost) FROM spend_logs WHERE start_time >= 1 AND start_time < 2"
            " GROUP BY tags",
            # The guardrail-block count reads only the blocked calls' partial index.
            "SELECT key_hash, COUNT(*) FROM spend_logs WHERE start_time >= 1 AND start_time < 2"
            ' AND guardrails LIKE \'%"action":"block"%\' GROUP BY key_hash',
        ]
        for sql in queries:
            steps = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
            on_table = [step for step in steps if "spend_logs" in step]
            assert on_table and all("INDEX" in step for step in on_table), (sql, steps)
            if "block" in sql:
                assert any("spend_logs_blocked" in step for step in on_table), steps
    finally:
        db.close()
