"""A key reads itself (its key, user, team and spend, never another's); /v1/models lists
what it may use; unknown query parameters are refused; x-litellm-* reply headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.admin import Admin, AdminGateway, error_of
from tests.conftest import MASTER_KEY, free_port, gateway_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway


@pytest.fixture(scope="module")
def world(gateway: AdminGateway) -> dict[str, Any]:
    admin = Admin(gateway)
    team = admin.new_team(team_alias="self-team", models=["gpt-test", "fake-ok"])
    admin.ok("POST", "/user/new", {"user_id": "self-user", "auto_create_key": False})
    mine = admin.generate(user_id="self-user", team_id=team, models=["gpt-test"])
    other_team = admin.new_team(team_alias="other-team")
    other = admin.generate(user_id="other-user", team_id=other_team)
    assert admin.chat(mine["key"]).status_code == 200
    assert admin.chat(other["key"]).status_code == 200
    return {"admin": admin, "team": team, "mine": mine, "other": other, "other_team": other_team}


def test_key_info_of_itself_without_query_or_with_its_own_key(world: dict[str, Any]) -> None:
    admin, mine = world["admin"], world["mine"]
    for params in ({}, {"key": mine["key"]}, {"key": mine["token"]}):
        response = admin.get("/key/info", auth_key=mine["key"], **params)
        assert response.status_code == 200, response.text
        assert response.json()["info"]["token"] == mine["token"]
        assert mine["key"] not in response.text


def test_key_info_of_another_key_is_403_whether_or_not_it_exists(world: dict[str, Any]) -> None:
    admin, mine = world["admin"], world["mine"]
    for other in (world["other"]["key"], world["other"]["token"], "sk-no-such-key-000000"):
        response = admin.get("/key/info", auth_key=mine["key"], key=other)
        assert response.status_code == 403, response.text
        assert error_of(response)["type"] == "permission_error"


def test_user_info_of_its_own_user_only(world: dict[str, Any]) -> None:
    admin, key = world["admin"], world["mine"]["key"]
    own = admin.get("/user/info", auth_key=key, user_id="self-user")
    assert own.status_code == 200 and own.json()["user_id"] == "self-user"
    assert [k["token"] for k in own.json()["keys"]] == [world["mine"]["token"]]
    assert admin.get("/user/info", auth_key=key).json()["user_id"] == "self-user"
    assert admin.get("/user/info", auth_key=key, user_id="other-user").status_code == 403


def test_team_info_of_its_own_team_only(world: dict[str, Any]) -> None:
    admin, key = world["admin"], world["mine"]["key"]
    own = admin.get("/team/info", auth_key=key, team_id=world["team"])
    assert own.status_code == 200 and own.json()["team_info"]["team_alias"] == "self-team"
    assert [k["token"] for k in own.json()["keys"]] == [world["mine"]["token"]]
    assert admin.get("/team/info", auth_key=key).json()["team_id"] == world["team"]
    other = admin.get("/team/info", auth_key=key, team_id=world["other_team"])
    assert other.status_code == 403


def test_spend_logs_of_itself_only(world: dict[str, Any]) -> None:
    admin, mine = world["admin"], world["mine"]
    rows = admin.get("/spend/logs", auth_key=mine["key"]).json()
    assert rows and {r["api_key"] for r in rows} == {mine["token"]}
    with_own = admin.get("/spend/logs", auth_key=mine["key"], api_key=mine["key"])
    assert with_own.status_code == 200 and with_own.json() == rows
    other = admin.get("/spend/logs", auth_key=mine["key"], api_key=world["other"]["token"])
    assert other.status_code == 403


def test_a_plain_key_still_may_not_write_or_list(world: dict[str, Any]) -> None:
    admin, key = world["admin"], world["mine"]["key"]
    assert admin.get("/key/list", auth_key=key).status_code == 403
    assert admin.post("/key/generate", {}, auth_key=key).status_code == 403
    assert admin.get("/global/spend/report", auth_key=key).status_code == 403


def test_models_lists_only_what_the_key_may_use(world: dict[str, Any]) -> None:
    admin = world["admin"]
    listed = admin.get("/v1/models", auth_key=world["mine"]["key"]).json()["data"]
    assert [m["id"] for m in listed] == ["gpt-test"]
    everything = admin.get("/v1/models").json()["data"]
    assert {"gpt-test", "fake-ok", "embed-test"} <= {m["id"] for m in everything}


@pytest.mark.parametrize(
    "path", ["/spend/logs", "/global/spend/report", "/global/spend/teams", "/key/info"]
)
def test_unknown_query_parameter_is_a_400_naming_it(world: dict[str, Any], path: str) -> None:
    response = world["admin"].get(path, api_keyy="sk-typo")
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == "api_keyy"


def test_litellm_headers_carry_the_tollway_values(world: dict[str, Any]) -> None:
    response = world["admin"].chat(world["mine"]["key"])
    headers = response.headers
    for name in ("response-cost", "key-spend", "call-id", "attempted-retries"):
        assert headers[f"x-litellm-{name}"] == headers[f"x-tollway-{name}"], name
    assert headers["x-litellm-attempted-fallbacks"] == "0"
    assert headers["x-litellm-model-id"]


def test_a_reply_carries_the_keys_rate_limit_figures_once(world: dict[str, Any]) -> None:
    admin = world["admin"]
    key = admin.generate(rpm_limit=2, tpm_limit=100_000)["key"]
    first = admin.chat(key)
    assert first.status_code == 200, first.text
    headers = first.headers
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"] in {"59s", "60s"}
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert 0 < int(headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert float(headers["x-tollway-key-spend"]) > 0
    assert admin.chat(key).headers["x-ratelimit-remaining-requests"] == "0"
    # The refusal carries the refusing level's figures, each header once.
    refused = admin.chat(key)
    assert refused.status_code == 429, refused.text
    for name in ("limit-requests", "remaining-requests", "reset-requests"):
        assert len(refused.headers.get_list(f"x-ratelimit-{name}")) == 1, name
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.fixture(scope="module")
def quiet(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    tmp: Path = tmp_path_factory.mktemp("quiet")
    gateway = InProcessGateway(tmp, gateway_config(fake_openai, free_port()), litellm_headers=False)
    with gateway.sync_client() as client:
        yield Admin(AdminGateway(gateway, client), MASTER_KEY)


def test_litellm_headers_can_be_turned_off(quiet: Admin) -> None:
    key = quiet.generate()["key"]
    response = quiet.chat(key)
    assert response.status_code == 200
    assert "x-tollway-call-id" in response.headers
    assert not [name for name in response.headers if name.startswith("x-litellm-")]
