"""/spend/logs, /global/spend/report and /model/info."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from proxy.auth import hash_key
from tests.admin import Admin, AdminGateway, error_of
from tests.conftest import UPSTREAM_KEY


@pytest.fixture(scope="module")
def used(gateway: AdminGateway) -> Iterator[dict[str, Any]]:
    """Two teams, one key each, one request per key."""
    admin = Admin(gateway)
    team_a = admin.new_team(team_alias="spend-a")
    team_b = admin.new_team(team_alias="spend-b")
    key_a = admin.generate(team_id=team_a)
    key_b = admin.generate(team_id=team_b)
    for key in (key_a, key_b):
        assert admin.chat(key["key"]).status_code == 200
    manager = admin.generate(team_id=team_a, key_type="management")["key"]
    yield {
        "admin": admin,
        "a": team_a,
        "b": team_b,
        "key_a": key_a,
        "key_b": key_b,
        "manager": manager,
    }
    admin.close()


def test_spend_logs_show_a_request_made_with_a_key(used: dict[str, Any]) -> None:
    admin, key = used["admin"], used["key_a"]
    response = admin.get("/spend/logs", api_key=key["key"])
    assert response.status_code == 200
    assert key["key"] not in response.text
    rows = response.json()
    assert len(rows) == 1
    row = rows[0]
    assert row["api_key"] == hash_key(key["key"]) == key["token"]
    assert row["team_id"] == used["a"] and row["model"] == "gpt-test"
    assert row["spend"] > 0 and row["total_tokens"] > 0
    assert row["startTime"].endswith("Z")
    by_hash = admin.ok("GET", "/spend/logs", api_key=key["token"])
    assert [r["request_id"] for r in by_hash] == [row["request_id"]]


def test_spend_logs_filter_by_team_model_and_date(used: dict[str, Any]) -> None:
    admin = used["admin"]
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    assert len(admin.ok("GET", "/spend/logs", team_id=used["b"])) == 1
    assert len(admin.ok("GET", "/spend/logs", model="gpt-test")) >= 2
    assert admin.ok("GET", "/spend/logs", model="no-such-model") == []
    in_range = admin.ok(
        "GET", "/spend/logs", start_date=today.isoformat(), end_date=today.isoformat()
    )
    assert len(in_range) >= 2
    assert admin.ok("GET", "/spend/logs", end_date=yesterday) == []
    bad = admin.get("/spend/logs", start_date="last tuesday")
    assert bad.status_code == 400 and error_of(bad)["param"] == "start_date"


def test_spend_report_groups_by_key_team_user_and_model(used: dict[str, Any]) -> None:
    admin = used["admin"]
    by_key = {r["api_key"]: r for r in admin.ok("GET", "/global/spend/report", group_by="key")}
    assert by_key[used["key_a"]["token"]]["requests"] == 1
    assert by_key[used["key_a"]["token"]]["spend"] > 0
    by_team = {r["team_id"]: r for r in admin.ok("GET", "/global/spend/report", group_by="team")}
    assert set(by_team) >= {used["a"], used["b"]}
    by_model = admin.ok("GET", "/global/spend/report", group_by="model")
    assert any(r["model"] == "gpt-test" and r["requests"] >= 2 for r in by_model)
    assert admin.get("/global/spend/report", group_by="user").status_code == 200
    bad = admin.get("/global/spend/report", group_by="planet")
    assert bad.status_code == 400 and error_of(bad)["param"] == "group_by"


def test_management_key_sees_only_its_teams_spend(used: dict[str, Any]) -> None:
    admin, manager = used["admin"], used["manager"]
    logs = admin.get("/spend/logs", auth_key=manager).json()
    assert {r["team_id"] for r in logs} == {used["a"]}
    assert admin.get("/spend/logs", auth_key=manager, team_id=used["b"]).status_code == 403
    report = admin.get("/global/spend/report", auth_key=manager, group_by="key").json()
    assert {r["api_key"] for r in report} == {used["key_a"]["token"]}
    teams = admin.get("/global/spend/report", auth_key=manager, group_by="team").json()
    assert [r["team_id"] for r in teams] == [used["a"]]


def test_model_info_never_shows_credentials(used: dict[str, Any]) -> None:
    response = used["admin"].get("/model/info")
    assert response.status_code == 200
    assert UPSTREAM_KEY not in response.text
    data = response.json()["data"]
    entry = next(d for d in data if d["model_name"] == "gpt-test")
    assert "api_key" not in entry["litellm_params"]
    assert entry["litellm_params"]["model"] == "openai/fake-ok"
    assert entry["model_info"]["id"]
