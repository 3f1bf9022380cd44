"""What LiteLLM's proxy e2e tests read, in LiteLLM's shapes: team members, users made from
members, model groups and access groups, spend reports, request-level routing fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin import Admin, AdminGateway, error_of
from tests.conftest import MASTER_KEY, free_port, gateway_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway

# Two models in the access group "beta"; gateway_config's models stay outside it.
_BETA = """  - model_name: {name}
    litellm_params:
      model: openai/fake-ok
      api_base: {base}
      api_key: os.environ/TEST_UPSTREAM_KEY
      region_name: {region}
    model_info:
      access_groups: [beta]
"""
# A provider wildcard group, as in LiteLLM's CI config.
_WILDCARD = """  - model_name: "anthropic/*"
    litellm_params:
      model: "anthropic/*"
      api_base: {base}
      api_key: os.environ/TEST_UPSTREAM_KEY
"""
# Every fake-ok deployment priced, so that calls show up as spend.
_PRICED = (
    "      model: openai/fake-ok\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
)


@pytest.fixture(scope="module")
def admin(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    beta = "".join(
        _BETA.format(name=name, base=fake_openai.base_url, region=region)
        for name, region in (("beta-1", "eu"), ("beta-2", "us"))
    )
    beta += _WILDCARD.format(base=fake_openai.base_url)
    config = gateway_config(fake_openai, free_port()).replace(
        "model_list:\n", "model_list:\n" + beta, 1
    )
    config = config.replace("      model: openai/fake-ok\n", _PRICED)
    gateway = InProcessGateway(tmp_path_factory.mktemp("shapes"), config)
    with gateway.sync_client() as client:
        yield Admin(AdminGateway(gateway, client), MASTER_KEY)


def chat(admin: Admin, key: str, model: str, **fields: Any) -> Any:
    return admin.http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], **fields},
        headers={"authorization": f"Bearer {key}"},
    )


def members_of(admin: Admin, team_id: str) -> list[dict[str, Any]]:
    info = admin.ok("GET", "/team/info", team_id=team_id)
    members: list[dict[str, Any]] = info["team_info"]["members_with_roles"]
    return members


def test_member_add_update_delete(admin: Admin) -> None:
    team = admin.new_team(team_alias="members", models=None)
    assert admin.ok("GET", "/team/info", team_id=team)["team_info"]["models"] == []
    added = admin.ok(
        "POST",
        "/team/member_add",
        {"team_id": team, "member": [{"role": "user", "user_id": "m1@example.com"}]},
    )
    assert [u["user_id"] for u in added["updated_users"]] == ["m1@example.com"]
    assert any(m["user_id"] == "m1@example.com" for m in members_of(admin, team))
    again = admin.post(
        "/team/member_add", {"team_id": team, "member": {"user_id": "m1@example.com"}}
    )
    assert again.status_code == 400
    updated = admin.ok(
        "POST",
        "/team/member_update",
        {"team_id": team, "user_id": "m1@example.com", "max_budget_in_team": 2.5},
    )
    assert updated["max_budget_in_team"] == 2.5
    admin.ok("POST", "/team/member_delete", {"team_id": team, "user_id": "m1@example.com"})
    assert not any(m["user_id"] == "m1@example.com" for m in members_of(admin, team))
    missing = admin.post("/team/member_delete", {"team_id": team, "user_id": "m1@example.com"})
    assert missing.status_code == 400


def test_members_are_users_and_email_members_resolve_to_users(admin: Admin) -> None:
    admin.ok("POST", "/user/new", {"user_id": "by-mail", "user_email": "by@mail.example"})
    team = admin.new_team(
        members_with_roles=[
            {"role": "admin", "user_id": "fresh-member"},
            {"role": "user", "user_email": "by@mail.example"},
        ]
    )
    members = {m["user_id"]: m for m in members_of(admin, team)}
    assert members["by-mail"]["user_email"] == "by@mail.example"
    info = admin.ok("GET", "/user/info", user_id="fresh-member")
    assert [t["team_id"] for t in info["teams"]] == [team]
    membership = info["teams"][0]["team_memberships"][0]
    assert membership["user_id"] == "fresh-member" and membership["team_id"] == team


def test_member_budget_is_enforced_and_shown(admin: Admin) -> None:
    team = admin.new_team(team_alias="member-budget")
    user = admin.ok("POST", "/user/new", {"user_id": "capped-member", "team_id": team})
    assert user["team_id"] == team and admin.chat(user["key"]).status_code == 200
    admin.ok(
        "POST",
        "/team/member_update",
        {"team_id": team, "user_id": "capped-member", "max_budget_in_team": 1e-9},
    )
    refused = admin.chat(user["key"])
    assert refused.status_code == 429
    assert "Budget has been exceeded!" in error_of(refused)["message"]
    info = admin.ok("GET", "/user/info", user_id="capped-member")
    membership = info["teams"][0]["team_memberships"][0]
    assert membership["litellm_budget_table"]["max_budget"] == 1e-9


def test_user_new_with_duration_and_team(admin: Admin) -> None:
    team = admin.new_team(team_alias="user-team")
    user = admin.ok("POST", "/user/new", {"duration": "1h", "team_id": team, "models": None})
    assert user["expires"].endswith("Z") and user["team_id"] == team
    key = admin.ok("GET", "/key/info", key=user["token"])["info"]
    assert key["team_id"] == team and key["expires"] == user["expires"]
    assert any(m["user_id"] == user["user_id"] for m in members_of(admin, team))


def test_proxy_budget_user_is_the_total_spend(admin: Admin) -> None:
    before = admin.ok("GET", "/user/info", user_id="litellm-proxy-budget")["user_info"]["spend"]
    assert chat(admin, MASTER_KEY, "gpt-test").status_code == 200
    after = admin.ok("GET", "/user/info", user_id="litellm-proxy-budget")["user_info"]["spend"]
    assert after > before
    admin.ok("POST", "/user/update", {"user_id": "litellm-proxy-budget", "spend": 0})
    reset = admin.ok("GET", "/user/info", user_id="litellm-proxy-budget")["user_info"]["spend"]
    assert reset == 0


def test_star_all_team_models_and_access_groups(admin: Admin) -> None:
    star = admin.generate(models=["*"])["key"]
    assert chat(admin, star, "fake-ok").status_code == 200
    team = admin.new_team(models=["gpt-test"])
    team_key = admin.generate(team_id=team, models=["all-team-models"])["key"]
    assert chat(admin, team_key, "gpt-test").status_code == 200
    assert chat(admin, team_key, "fake-ok").status_code == 403
    beta = admin.generate(models=["beta"])["key"]
    served = chat(admin, beta, "beta-2")
    assert served.status_code == 200
    assert served.headers["x-litellm-model-region"] == "us"
    assert chat(admin, beta, "gpt-test").status_code == 403
    listed = admin.get("/models", auth_key=beta).json()["data"]
    assert sorted(m["id"] for m in listed) == ["beta-1", "beta-2"]
    groups = admin.get("/models", auth_key=beta, only_model_access_groups="True").json()["data"]
    assert [g["id"] for g in groups] == ["beta"]
    plain = admin.generate(models=["gpt-test"])["key"]
    assert admin.get("/models", auth_key=plain, only_model_access_groups="True").json() == {
        "object": "list",
        "data": [],
    }


def test_model_group_info_lists_what_the_key_may_use(admin: Admin) -> None:
    key = admin.generate(models=["beta"])["key"]
    data = admin.get("/model_group/info", auth_key=key).json()["data"]
    assert [g["model_group"] for g in data] == ["beta-1", "beta-2"]
    assert data[0]["model_group_access_groups"] == ["beta"]
    assert data[0]["providers"] == ["openai"] and data[0]["model_group"] == "beta-1"
    everything = admin.ok("GET", "/model_group/info")["data"]
    assert {"gpt-test", "beta-1"} <= {g["model_group"] for g in everything}


def test_model_group_info_expands_a_wildcard_group_into_priced_models(admin: Admin) -> None:
    groups = [g["model_group"] for g in admin.ok("GET", "/model_group/info")["data"]]
    assert "anthropic/*" not in groups
    expanded = [g for g in groups if g.startswith("anthropic/")]
    assert expanded and all("*" not in g for g in expanded)


def test_routes_lists_the_admin_routes_without_a_key(admin: Admin) -> None:
    response = admin.http.get("/routes")
    assert response.status_code == 200
    paths = {r["path"] for r in response.json()["routes"]}
    assert {"/key/generate", "/team/member_add", "/model_group/info"} <= paths


def test_spend_logs_by_reply_id_with_litellm_metadata(admin: Admin) -> None:
    team = admin.new_team(team_alias="logged")
    key = admin.generate(team_id=team, key_alias="logged-key")
    # The mock's reply ids differ per request body (the fake upstream's are all the same).
    reply = chat(admin, key["key"], "gpt-test", mock_response="logged reply")
    reply_id = reply.json()["id"]
    rows = admin.ok("GET", "/spend/logs", request_id=reply_id)
    assert len(rows) == 1 and rows[0]["api_key"] == key["token"]
    metadata = rows[0]["metadata"]
    assert metadata["user_api_key"] == key["token"]
    assert metadata["user_api_key_alias"] == "logged-key"
    assert metadata["user_api_key_team_id"] == team
    assert metadata["user_api_key_team_alias"] == "logged"
    by_call = admin.ok("GET", "/spend/logs", request_id=reply.headers["x-tollway-call-id"])
    assert by_call == rows


def test_spend_report_by_day_and_global_spend_teams(admin: Admin) -> None:
    team = admin.new_team(team_alias="reported")
    key = admin.generate(team_id=team)["key"]
    assert admin.chat(key).status_code == 200
    days = admin.ok("GET", "/global/spend/report", group_by="team", group_by_day="true")
    assert days and days[-1]["group_by_day"].count("-") == 2
    teams = {t["team_id"]: t for day in days for t in day["teams"]}
    assert teams[team]["total_spend"] > 0
    assert teams[team]["metadata"][0]["model"] == "gpt-test"
    summary = admin.ok("GET", "/global/spend/teams")
    assert team in summary["teams"]
    assert any(t["team_id"] == team for t in summary["total_spend_per_team"])
    assert summary["daily_spend"][-1][team] > 0


def test_mock_response_answers_without_the_upstream(admin: Admin, fake_openai: FakeOpenAI) -> None:
    key = admin.generate()["key"]
    hits = fake_openai.hits
    response = chat(admin, key, "gpt-test", mock_response="canned answer")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "canned answer"
    assert fake_openai.hits == hits


def test_mock_testing_fallbacks_goes_to_the_request_fallbacks(admin: Admin) -> None:
    allowed = admin.generate(models=["gpt-test", "fake-ok"])["key"]
    fields = {"mock_testing_fallbacks": True, "fallbacks": ["fake-ok"]}
    response = chat(admin, allowed, "gpt-test", **fields)
    assert response.status_code == 200, response.text
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"
    custom = {"mock_testing_fallbacks": True, "fallbacks": [{"model": "fake-ok"}]}
    assert chat(admin, allowed, "gpt-test", **custom).status_code == 200
    narrow = admin.generate(models=["gpt-test"])["key"]
    refused = chat(admin, narrow, "gpt-test", **fields)
    assert refused.status_code == 403 and error_of(refused)["param"] == "model"


def test_mock_rate_limit_is_retried_and_headers_say_so(admin: Admin) -> None:
    key = admin.generate()["key"]
    response = chat(admin, key, "gpt-test", mock_testing_rate_limit_error=True)
    assert response.status_code == 200, response.text
    assert response.headers["x-litellm-attempted-retries"] == "1"
    assert int(response.headers["x-litellm-max-retries"]) >= 1


def test_request_timeout_header_and_mock_timeout(admin: Admin) -> None:
    key = admin.generate()["key"]
    headers = {"authorization": f"Bearer {key}", "x-litellm-timeout": "0.25"}
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    served = admin.http.post("/v1/chat/completions", json=body, headers=headers)
    assert served.status_code == 200 and served.headers["x-litellm-timeout"] == "0.25"
    timed_out = admin.http.post(
        "/v1/chat/completions", json={**body, "mock_timeout": True}, headers=headers
    )
    assert timed_out.status_code == 504 and error_of(timed_out)["type"] == "timeout_error"
    assert timed_out.headers["x-litellm-timeout"] == "0.25"
    bad = admin.http.post(
        "/v1/chat/completions", json=body, headers={**headers, "x-litellm-timeout": "soon"}
    )
    assert bad.status_code == 400 and error_of(bad)["param"] == "x-litellm-timeout"
