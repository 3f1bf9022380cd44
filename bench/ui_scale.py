"""``python -m bench.ui_scale``: the admin UI's API calls at 100,000 keys and 10,000,000
spend-log rows, each timed (best of three) against the 300 ms page budget.

The database is the one ``tests/ui/test_scale.py`` uses (``tests/ui/seed.py``: built inside
SQLite, ~140 s the first time, cached in the temp folder by content hash); the calls are
that test's ``page_calls`` through the real app in this process. Prints one line per call
and exits 1 when any is over budget. ``TOLLWAY_UI_SEED_ROWS`` changes the row count.
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.inprocess import InProcessGateway, bearer
from tests.ui import seed
from tests.ui.test_scale import CONFIG, ROWS, page_calls

BUDGET_S = 0.3


async def timings() -> dict[str, float]:
    path, seconds = seed.cached(ROWS)
    print(f"{seed.KEYS} keys and {ROWS} spend-log rows ({path}; built in {seconds:.1f} s)")
    gateway = await InProcessGateway.build(path.parent, CONFIG)
    best: dict[str, float] = {}
    async with gateway.running() as client:
        for name, (route, params) in page_calls().items():
            for _ in range(3):
                started = time.perf_counter()
                response = await client.get(route, params=params, headers=bearer())
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                best[name] = min(best.get(name, elapsed), elapsed)
    return best


def main() -> int:
    best = asyncio.run(timings())
    for name, seconds in best.items():
        mark = "" if seconds < BUDGET_S else f"   over the {BUDGET_S * 1000:.0f} ms budget"
        print(f"{name:32} {seconds * 1000:7.1f} ms{mark}")
    return 1 if any(s >= BUDGET_S for s in best.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
