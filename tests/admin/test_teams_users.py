"""/team/* and /user/*: records, validation, and that budgets set here are enforced."""

from __future__ import annotations

import pytest

from tests.admin import Admin, error_of


def test_team_new_info_and_update(admin: Admin) -> None:
    team = admin.ok(
        "POST",
        "/team/new",
        {
            "team_id": "research",
            "team_alias": "Research",
            "max_budget": 50,
            "budget_duration": "30d",
            "members_with_roles": [{"user_id": "ann", "role": "admin"}],
        },
    )
    assert team["team_id"] == "research" and team["spend"] == 0
    # The master key's LiteLLM user, ``default_user_id``, is the admin of teams it creates.
    assert team["members_with_roles"] == [
        {"user_id": "ann", "user_email": None, "role": "admin"},
        {"user_id": "default_user_id", "user_email": None, "role": "admin"},
    ]
    assert team["budget_reset_at"].endswith("Z") and team["created_at"].endswith("Z")
    duplicate = admin.post("/team/new", {"team_id": "research"})
    assert duplicate.status_code == 400 and error_of(duplicate)["param"] == "team_id"
    key = admin.generate(team_id="research")
    updated = admin.ok("POST", "/team/update", {"team_id": "research", "rpm_limit": 7})
    assert updated["data"]["rpm_limit"] == 7 and updated["data"]["max_budget"] == 50
    info = admin.ok("GET", "/team/info", team_id="research")
    assert info["team_info"]["rpm_limit"] == 7
    assert [k["token"] for k in info["keys"]] == [key["token"]]
    assert key["key"] not in str(info)
    assert admin.get("/team/info", team_id="nope").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        pytest.param("/team/new", {"max_budget": -1}, "max_budget", id="new-negative"),
        pytest.param("/team/new", {"spend": 5}, "spend", id="new-spend"),
        pytest.param("/team/new", {"tpm_limit": "many"}, "tpm_limit", id="new-string"),
        pytest.param("/team/new", {"budget_duration": "soon"}, "budget_duration", id="new-dur"),
        pytest.param("/team/new", {"members": [{"user_id": "a", "rol": "x"}]}, "rol", id="member"),
        pytest.param("/team/update", {"team_id": "t1", "spend": 0}, "spend", id="update-spend"),
        pytest.param("/team/update", {"max_budget": 1}, "team_id", id="update-no-id"),
        pytest.param("/user/new", {"max_budget": -0.5}, "max_budget", id="user-negative"),
        pytest.param("/user/new", {"user_role": "god"}, "user_role", id="user-role"),
        pytest.param("/user/new", {"spend": -1}, "spend", id="user-spend"),
        pytest.param("/user/update", {"user_id": "u", "created_at": 1}, "created_at", id="u-ts"),
    ],
)
def test_bad_team_and_user_fields_are_400_naming_the_field(
    admin: Admin, path: str, body: dict[str, object], param: str
) -> None:
    response = admin.post(path, body)
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == param


def test_team_budget_set_through_the_api_is_enforced(admin: Admin) -> None:
    team = admin.new_team(team_alias="broke")
    secret = admin.generate(team_id=team)["key"]
    assert admin.chat(secret).status_code == 200
    admin.ok("POST", "/team/update", {"team_id": team, "max_budget": 0})
    response = admin.chat(secret)
    assert response.status_code == 429
    assert error_of(response)["type"] == "budget_exceeded"
    admin.ok("POST", "/team/update", {"team_id": team, "max_budget": None})
    assert admin.chat(secret).status_code == 200


def test_blocked_team_blocks_its_keys(admin: Admin) -> None:
    team = admin.new_team(team_alias="blocked")
    secret = admin.generate(team_id=team)["key"]
    admin.ok("POST", "/team/update", {"team_id": team, "blocked": True})
    assert admin.chat(secret).status_code == 403


def test_team_delete_deletes_its_keys(admin: Admin) -> None:
    team = admin.new_team(team_alias="doomed")
    secret = admin.generate(team_id=team)["key"]
    deleted = admin.ok("POST", "/team/delete", {"team_ids": [team]})
    assert deleted == {"deleted_teams": [team], "deleted_keys": 1}
    assert admin.chat(secret).status_code == 401
    assert admin.post("/team/delete", {"team_ids": [team]}).status_code == 404
    assert team not in [t["team_id"] for t in admin.ok("GET", "/team/list")]


def test_user_lifecycle(admin: Admin) -> None:
    admin.ok("POST", "/team/new", {"team_id": "ops"})
    user = admin.ok(
        "POST",
        "/user/new",
        {"user_id": "bob", "user_email": "bob@example.com", "max_budget": 3, "teams": ["ops"]},
    )
    assert user["user_id"] == "bob" and user["key"].startswith("sk-")
    secret = user["key"]
    assert admin.chat(secret).status_code == 200
    info = admin.ok("GET", "/user/info", user_id="bob")
    assert info["user_info"]["max_budget"] == 3
    assert [t["team_id"] for t in info["teams"]] == ["ops"]
    assert [k["token"] for k in info["keys"]] == [user["token"]]
    assert secret not in str(info)
    updated = admin.ok("POST", "/user/update", {"user_id": "bob", "max_budget": 0})
    assert updated["data"]["max_budget"] == 0 and updated["data"]["user_email"] == "bob@example.com"
    assert admin.chat(secret).status_code == 429
    explicit = admin.generate(user_id="bob")
    listed = admin.ok("GET", "/user/list", page_size=1)
    assert listed["total"] >= 1 and len(listed["users"]) == 1
    admin.ok("POST", "/user/delete", {"user_ids": ["bob"]})
    assert admin.chat(secret).status_code == 401
    assert admin.chat(explicit["key"]).status_code == 401
    assert admin.get("/user/info", user_id="bob").status_code == 404
    team = admin.ok("GET", "/team/info", team_id="ops")["team_info"]
    assert [m["user_id"] for m in team["members_with_roles"]] == ["default_user_id"]


def test_user_new_without_key(admin: Admin) -> None:
    user = admin.ok("POST", "/user/new", {"auto_create_key": False})
    assert "key" not in user and user["user_id"]
