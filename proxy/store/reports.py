"""Spend report queries beyond the per-group totals of ``Store.spend_report``: the proxy's
total, per-day totals (LiteLLM's ``group_by_day``) and ``/global/spend/teams``.

Every query reads ``spend_logs`` through ``Store.read`` with bound parameters only; the
column names come from the constant table below.
"""

from __future__ import annotations

from typing import Any, Final

from .sqlite import GroupBy, Store

# The group's column in spend_logs.
_COLUMNS: Final[dict[str, str]] = {
    "key": "key_hash",
    "team": "team_id",
    "user": "user_id",
    "model": "model",
    "end_user": "end_user",
}
_DAY: Final = "strftime('%Y-%m-%d', start_time, 'unixepoch')"


def _where(start: float | None, end: float | None, team_id: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if team_id is not None:
        clauses.append("team_id = ?")
        params.append(team_id)
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start_time < ?")
        params.append(end)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def total_spend(store: Store) -> float:
    """Everything the proxy has spent (every spend-log row)."""
    rows = await store.read("SELECT COALESCE(SUM(cost), 0) FROM spend_logs")
    return float(rows[0][0])


async def daily_report(
    store: Store,
    group_by: GroupBy,
    *,
    start: float | None = None,
    end: float | None = None,
    team_id: str | None = None,
) -> list[dict[str, Any]]:
    """Per UTC day (oldest first), each group's spend and tokens, with the models behind it:
    ``[{"group_by_day": "YYYY-MM-DD", "groups": [{"group", "total_spend", "metadata":
    [{"model", "spend", "total_tokens"}]}]}]``."""
    column = _COLUMNS[group_by]
    where, params = _where(start, end, team_id)
    rows = await store.read(
        f"SELECT {_DAY}, {column}, model, COALESCE(SUM(cost), 0), "
        f"COALESCE(SUM(total_tokens), 0), COUNT(*) FROM spend_logs{where} "
        f"GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC",
        params,
    )
    days: dict[str, dict[Any, dict[str, Any]]] = {}
    for day, group, model, spend, tokens, requests in rows:
        groups = days.setdefault(day, {})
        entry = groups.setdefault(
            group, {"group": group, "total_spend": 0.0, "requests": 0, "metadata": []}
        )
        entry["total_spend"] = round(entry["total_spend"] + float(spend), 12)
        entry["requests"] += int(requests)
        entry["metadata"].append(
            {"model": model, "spend": round(float(spend), 12), "total_tokens": int(tokens)}
        )
    return [
        {
            "group_by_day": day,
            "groups": sorted(groups.values(), key=lambda g: -g["total_spend"]),
        }
        for day, groups in days.items()
    ]


async def teams_report(store: Store, team_id: str | None = None) -> dict[str, Any]:
    """LiteLLM's ``/global/spend/teams``: spend per team per day, and per team overall."""
    where, params = _where(None, None, team_id)
    rows = await store.read(
        f"SELECT {_DAY}, team_id, COALESCE(SUM(cost), 0) FROM spend_logs{where} "
        "GROUP BY 1, 2 ORDER BY 1",
        params,
    )
    daily: dict[str, dict[str, Any]] = {}
    totals: dict[str, float] = {}
    for day, team, spend in rows:
        name = team if team is not None else "no team"
        daily.setdefault(day, {"date": day})[name] = round(float(spend), 12)
        totals[name] = round(totals.get(name, 0.0) + float(spend), 12)
    return {
        "daily_spend": list(daily.values()),
        "teams": sorted(totals),
        "total_spend_per_team": [
            {"team_id": name, "total_spend": spend}
            for name, spend in sorted(totals.items(), key=lambda item: -item[1])
        ],
    }
