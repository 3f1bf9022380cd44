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
from ..store.reports import ReportGroup, daily_report, group_report, teams_report
from .common import (
    Action,
    AdminRoutes,
    AdminState,
    authorize,
    check_query,
    iso,
    json_response,
    query_page,
    query_str,
    query_time,
)

_GROUP_FIELDS = {
    "key": "api_key",
    "team": "team_id",
    "user": "user_id",
    "model": "model",
    "end_user": "end_user",
    "tag": "tag",
}


def _key_hash(value: str) -> str:
    """A key filter may be given as the secret or as its hash."""
    is_hash = len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    return value if is_hash else hash_key(value)


def log_object(state: AdminState, row: SpendLogRow) -> dict[str, Any]:
    key = state.directory.keys.get(row.key_hash) if row.key_hash else None
    team = state.directory.teams.get(row.team_id) if row.team_id else None
    return {
        "request_id": row.request_id,
        "call_id": row.call_id,
        "api_key": row.key_hash,
        "user": row.user_id,
        "end_user": row.end_user,
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
        # LiteLLM's names for who made the call (dashboards built on it read these).
        "metadata": {
            "user_api_key": row.key_hash,
            "user_api_key_alias": key.key_alias if key else None,
            "user_api_key_user_id": row.user_id,
            "user_api_key_team_id": row.team_id,
            "user_api_key_team_alias": team.team_alias if team else None,
            "user_api_key_org_id": team.metadata.get("organization_id") if team else None,
        },
    }


_LOG_PARAMS = (
    "api_key",
    "user_id",
    "team_id",
    "model",
    "request_id",
    "end_user",
    "start_date",
    "end_date",
    "page",
    "page_size",
)
_REPORT_PARAMS = ("group_by", "start_date", "end_date", "group_by_day")


class SpendRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        return [
            Route("/spend/logs", self.logs, methods=["GET"]),
            Route("/global/spend/report", self.report, methods=["GET"]),
            Route("/global/spend/teams", self.teams, methods=["GET"]),
        ]

    async def logs(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.SPEND_READ, allow_self=True)
        check_query(request, _LOG_PARAMS)
        api_key = query_str(request, "api_key")
        key_hash = None if api_key is None else _key_hash(api_key)
        if caller.self_only:
            # A plain key reads its own calls only.
            caller.check_self(key_hash in (None, caller.key.token_hash), "spend logs")
            key_hash, team_id = caller.key.token_hash, None
        else:
            team_id = caller.team_filter(query_str(request, "team_id"), "spend")
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        page, page_size = query_page(request, "page_size", 100)
        await self.state.flusher.flush()
        rows = await self.state.store.spend_logs(
            key_hash=key_hash,
            user_id=query_str(request, "user_id"),
            team_id=team_id,
            model=query_str(request, "model"),
            request_id=query_str(request, "request_id"),
            end_user=query_str(request, "end_user"),
            start=start,
            end=end,
            page=page,
            page_size=page_size,
        )
        return json_response([log_object(self.state, row) for row in rows])

    async def report(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.SPEND_READ)
        check_query(request, _REPORT_PARAMS)
        group_by = query_str(request, "group_by") or "team"
        group_by = _GROUP_ALIASES.get(group_by, group_by)
        if group_by not in _GROUP_FIELDS:
            raise InvalidRequest(
                "group_by must be one of key (api_key), team, user, model, end_user, tag",
                param="group_by",
            )
        # A team-scoped caller sees only its own team's spend, whatever the grouping.
        team_filter = None if caller.is_master else caller.team_scope or ""
        start = query_time(request, "start_date")
        end = query_time(request, "end_date", end=True)
        daily = (query_str(request, "group_by_day") or "false").lower()
        if daily not in ("true", "false"):
            raise InvalidRequest("group_by_day must be true or false", param="group_by_day")
        await self.state.flusher.flush()
        field = _GROUP_FIELDS[group_by]
        if daily == "true":
            days = await daily_report(
                self.state.store,
                cast(ReportGroup, group_by),
                start=start,
                end=end,
                team_id=team_filter,
            )
            for day in days:
                day[_DAY_LISTS[group_by]] = [
                    {field: g.pop("group"), **g} for g in day.pop("groups")
                ]
            return json_response(days)
        rows = await group_report(
            self.state.store, cast(ReportGroup, group_by), start=start, end=end, team_id=team_filter
        )
        return json_response([{field: r["group"], **r, "total_spend": r["spend"]} for r in rows])

    async def teams(self, request: Request) -> Response:
        """LiteLLM's ``/global/spend/teams``: spend per team per day and in total."""
        caller = authorize(self.state, request, Action.SPEND_READ)
        check_query(request, ())
        team_filter = None if caller.is_master else caller.team_scope or ""
        await self.state.flusher.flush()
        return json_response(await teams_report(self.state.store, team_filter))


# LiteLLM's group names, and the list each day of a daily report holds (its shape).
_GROUP_ALIASES = {"api_key": "key", "tags": "tag"}
_DAY_LISTS = {
    "key": "api_keys",
    "team": "teams",
    "user": "users",
    "model": "models",
    "end_user": "end_users",
    "tag": "tags",
}
