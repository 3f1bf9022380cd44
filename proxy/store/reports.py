"""Spend report queries: per-group totals (``/global/spend/report``, by key, team, user,
model, end user or tag), the proxy's total, per-day totals (LiteLLM's ``group_by_day``) and
``/global/spend/teams``.

Every query reads ``spend_logs`` through ``Store.read`` with bound parameters only; the
column names come from the constant table below. The SQL is the dialect SQLite and
PostgreSQL share: a tag breakdown groups by the stored JSON list of tags and splits each
list here (a handful of distinct lists), rather than with a JSON table function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec

from .sqlite import Store

ReportGroup = Literal["key", "team", "user", "model", "end_user", "tag"]

# The group's column in spend_logs.
_COLUMNS: Final[dict[str, str]] = {
    "key": "key_hash",
    "team": "team_id",
    "user": "user_id",
    "model": "model",
    "end_user": "end_user",
    "tag": "tags",
}
_DAY: Final = "strftime('%Y-%m-%d', start_time, 'unixepoch')"
# A call a guardrail blocked: its JSON list of verdicts holds an ``"action":"block"`` (the
# store writes compact JSON; a quote inside a reason is escaped, so it cannot match).
_BLOCKED: Final = '%"action":"block"%'
# The same test as SQL text, word for word the partial index's (migration 0011).
_BLOCKED_SQL: Final = 'guardrails LIKE \'%"action":"block"%\''
_decode_tags = msgspec.json.Decoder(list[str] | None).decode


def _groups(group_by: ReportGroup, value: Any) -> list[Any]:
    """The groups one stored value counts in: itself, or each of its tags (None: untagged)."""
    if group_by != "tag":
        return [value]
    try:
        tags = _decode_tags(value) if value else None
    except msgspec.DecodeError:
        tags = None
    return list(dict.fromkeys(tags)) if tags else [None]


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


async def group_report(
    store: Store,
    group_by: ReportGroup,
    *,
    start: float | None = None,
    end: float | None = None,
    team_id: str | None = None,
) -> list[dict[str, Any]]:
    """Totals per group, highest spend first: ``[{"group", "spend", "requests",
    "prompt_tokens", "completion_tokens", "total_tokens", "cache_hits", "cache_savings",
    "guardrail_blocks"}]``. By tag, a call with several tags counts in each of them and an
    untagged call in the group None."""
    column = _COLUMNS[group_by]
    where, params = _where(start, end, team_id)
    rows = await store.read(
        f"SELECT {column}, COALESCE(SUM(cost), 0), COUNT(*), "
        "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
        "COALESCE(SUM(total_tokens), 0), "
        "COALESCE(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(saved_cost), 0) "
        f"FROM spend_logs{where} GROUP BY {column} ORDER BY 2 DESC, 1",
        params,
    )
    # Blocked calls are counted apart, from their partial index (migration 0011): the
    # predicate is written out as the index's is, or the index is not used.
    blocked_where = f"{where} AND {_BLOCKED_SQL}" if where else f" WHERE {_BLOCKED_SQL}"
    counted = await store.read(
        f"SELECT {column}, COUNT(*) FROM spend_logs{blocked_where} GROUP BY {column}", params
    )
    blocked: dict[Any, int] = {r[0]: int(r[1]) for r in counted}
    rows = [(*r, blocked.get(r[0], 0)) for r in rows]
    if group_by == "tag":
        rows = _by_tag(rows)
    return [
        {
            "group": r[0],
            "spend": round(float(r[1]), 12),  # a sum of costs, at their precision
            "requests": int(r[2]),
            "prompt_tokens": int(r[3]),
            "completion_tokens": int(r[4]),
            "total_tokens": int(r[5]),
            "cache_hits": int(r[6]),
            "cache_savings": float(r[7]),
            "guardrail_blocks": int(r[8]),
        }
        for r in rows
    ]


def _by_tag(rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows per stored tag list as rows per tag, highest spend first (untagged: None)."""
    totals: dict[Any, list[Any]] = {}
    for value, *sums in rows:
        for tag in _groups("tag", value):
            entry = totals.get(tag)
            if entry is None:
                totals[tag] = [tag, *sums]
            else:
                for i, amount in enumerate(sums, 1):
                    entry[i] += amount
    return sorted(totals.values(), key=lambda r: (-r[1], r[0] is not None, str(r[0])))


async def daily_report(
    store: Store,
    group_by: ReportGroup,
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
    for day, value, model, spend, tokens, requests in rows:
        groups = days.setdefault(day, {})
        for group in _groups(group_by, value):
            entry = groups.setdefault(
                group, {"group": group, "total_spend": 0.0, "requests": 0, "metadata": {}}
            )
            entry["total_spend"] = round(entry["total_spend"] + float(spend), 12)
            entry["requests"] += int(requests)
            # By tag, two tag lists of one day can share a tag and a model: one entry each.
            item = entry["metadata"].setdefault(
                model, {"model": model, "spend": 0.0, "total_tokens": 0}
            )
            item["spend"] = round(item["spend"] + float(spend), 12)
            item["total_tokens"] += int(tokens)
    for groups in days.values():
        for entry in groups.values():
            entry["metadata"] = sorted(entry["metadata"].values(), key=lambda m: -m["spend"])
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
