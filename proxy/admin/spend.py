"""``/spend/logs`` and ``/global/spend/report``: read from SQLite after forcing a flush.

Team-scoped callers (management and read-only keys) only ever see their own team's rows.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import hash_key
from ..errors import InvalidRequest, PermissionDenied
from ..store import SpendLogRow
from .common import (
    Action,
    AdminState,
    authorize,
    iso,
    json_response,
    query_int,
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
    }


class SpendRoutes:
    def __init__(self, state: AdminState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/spend/logs", self.logs, methods=["GET"]),
            Route("/global/spend/report", self.report, methods=["GET"]),
        ]

    async def logs(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.SPEND_READ)
        team_id = query_str(request, "team_id")
        if not caller.is_master:
            if team_id is not None:
                caller.check_team(team_id, "spend")
            team_id = caller.team_scope
        api_key = query_str(request, "api_key")
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        page = query_int(request, "page", 1, high=10**9)
        page_size = query_int(request, "page_size", 100)
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
        visible: set[str] | None = None
        if not caller.is_master:
            # Without a team filter in the store's report, a team-scoped caller may only
            # group by what can be attributed to its team: itself, or its keys.
            if group_by == "team":
                visible = {caller.team_scope or ""}
            elif group_by == "key":
                visible = {
                    k.token_hash
                    for k in self.state.directory.keys.values()
                    if k.team_id == caller.team_scope
                }
            else:
                raise PermissionDenied(
                    "a team-scoped key may group the spend report by team or key only",
                    param="group_by",
                    code="team_scope",
                )
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        await self.state.flusher.flush()
        rows = await self.state.store.spend_report(group_by, start=start, end=end)  # type: ignore[arg-type]
        field = _GROUP_FIELDS[group_by]
        out = []
        for row in rows:
            if visible is not None and row["group"] not in visible:
                continue
            out.append({field: row["group"], **row, "total_spend": row["spend"]})
        return json_response(out)
