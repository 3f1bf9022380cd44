"""``/spend/logs`` and ``/global/spend/report``: read from SQLite after forcing a flush.

Team-scoped callers (management and read-only keys) only ever see their own team's rows.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import hash_key
from ..errors import InvalidRequest
from ..store import SpendLogRow
from ..store.sqlite import GroupBy
from .common import (
    Action,
    AdminRoutes,
    authorize,
    iso,
    json_response,
    query_page,
    query_str,
    query_time,
)

_GROUP_FIELDS = {"key": "api_key", "team": "team_id", "user": "user_id", "model": "model"}


def _key_hash(value: str) -> str:
    """A key filter may be given as the secret or as its hash."""
    is_hash = len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    return value if is_hash else hash_key(value)


def log_object(row: SpendLogRow) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "call_id": row.call_id,
        "api_key": row.key_hash,
        "user": row.user_id,
        "team_id": row.team_id,
        "model": row.model,
        "model_group": row.model,
        "deployment": row.deployment,
        "spend": row.cost,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "total_tokens": row.total_tokens,
        "startTime": iso(row.start_time),
        "endTime": iso(row.end_time),
        "latency_ms": row.latency_ms,
        "status": row.status,
        "status_code": row.status_code,
        "request_tags": row.tags,
        "estimated": row.estimated,
        "guardrails": row.guardrails,
        "cache_hit": row.cache_hit,
        "saved_cost": row.saved_cost,
    }


class SpendRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        return [
            Route("/spend/logs", self.logs, methods=["GET"]),
            Route("/global/spend/report", self.report, methods=["GET"]),
        ]

    async def logs(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.SPEND_READ)
        team_id = query_str(request, "team_id")
        team_id = caller.team_filter(team_id, "spend")
        api_key = query_str(request, "api_key")
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        page, page_size = query_page(request, "page_size", 100)
        await self.state.flusher.flush()
        rows = await self.state.store.spend_logs(
            key_hash=None if api_key is None else _key_hash(api_key),
            user_id=query_str(request, "user_id"),
            team_id=team_id,
            model=query_str(request, "model"),
            start=start,
            end=end,
            page=page,
            page_size=page_size,
        )
        return json_response([log_object(row) for row in rows])

    async def report(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.SPEND_READ)
        group_by = query_str(request, "group_by") or "team"
        if group_by not in _GROUP_FIELDS:
            raise InvalidRequest("group_by must be one of key, team, user, model", param="group_by")
        # A team-scoped caller sees only its own team's spend, whatever the grouping.
        team_filter = None if caller.is_master else caller.team_scope or ""
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        await self.state.flusher.flush()
        rows = await self.state.store.spend_report(
            cast(GroupBy, group_by), start=start, end=end, team_id=team_filter
        )
        field = _GROUP_FIELDS[group_by]
        return json_response([{field: r["group"], **r, "total_spend": r["spend"]} for r in rows])
