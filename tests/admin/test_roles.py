"""The admin guard: who may call which admin route (deny by default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin import Admin, AdminGateway, error_of, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def world(gateway: AdminGateway) -> Iterator[dict[str, Any]]:
    """Two teams; team A has a management key, a read-only key and an inference key."""
    admin = Admin(gateway)
    team_a = admin.new_team(team_alias="a", models=["gpt-test", "fake-ok"])
    team_b = admin.new_team(team_alias="b")
    manager = admin.generate(
        team_id=team_a,
        key_type="management",
        models=["gpt-test"],
        max_budget=10,
        rpm_limit=100,
    )
    yield {
        "admin": admin,
        "a": team_a,
        "b": team_b,
        "manager": manager["key"],
        "manager_token": manager["token"],
        "reader": admin.generate(team_id=team_a, key_type="read_only")["key"],
        "inference": admin.generate(team_id=team_a)["key"],
        "b_key": admin.generate(team_id=team_b)["token"],
        "a_big_key": admin.generate(team_id=team_a, max_budget=1000)["token"],
    }
    admin.close()


def test_management_key_mints_keys_only_in_its_own_team(world: dict[str, Any]) -> None:
    manager = world["admin"].as_key(world["manager"])
    created = manager.generate(max_budget=5, rpm_limit=50)
    assert created["team_id"] == world["a"]
    assert created["models"] == ["gpt-test"]
    assert created["created_by"] == world["manager_token"]
    assert manager.chat(created["key"]).status_code == 200
    other_team = manager.post("/key/generate", {"team_id": world["b"], "max_budget": 1})
    assert other_team.status_code == 403
    assert error_of(other_team)["type"] == "permission_error"
    manager.close()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"max_budget": 20, "rpm_limit": 1}, "max_budget", id="bigger-budget"),
        pytest.param({"rpm_limit": 1}, "max_budget", id="no-budget-is-unlimited"),
        pytest.param(
            {"max_budget": 1, "rpm_limit": 1, "models": ["fake-ok"]}, "models", id="other-model"
        ),
        pytest.param({"max_budget": 1, "rpm_limit": 1, "models": []}, "models", id="all-models"),
        pytest.param({"max_budget": 1, "rpm_limit": 1000}, "rpm_limit", id="bigger-rpm"),
        pytest.param({"max_budget": 1}, "rpm_limit", id="no-rpm-is-unlimited"),
        pytest.param(
            {"max_budget": 1, "rpm_limit": 1, "budget_duration": "1s"},
            "budget_duration",
            id="resetting-budget",
        ),
    ],
)
def test_management_key_cannot_mint_more_rights_than_its_own(
    world: dict[str, Any], body: dict[str, Any], param: str
) -> None:
    response = world["admin"].post("/key/generate", body, auth_key=world["manager"])
    assert response.status_code == 403, response.text
    assert error_of(response)["param"] == param


def test_management_key_cannot_raise_its_own_limits(world: dict[str, Any]) -> None:
    admin = world["admin"]
    response = admin.post(
        "/key/update",
        {"key": world["manager_token"], "max_budget": 1000},
        auth_key=world["manager"],
    )
    assert response.status_code == 403
    info = admin.ok("GET", "/key/info", key=world["manager_token"])["info"]
    assert info["max_budget"] == 10


def test_management_key_cannot_touch_other_teams_keys(world: dict[str, Any]) -> None:
    admin, manager, b_key = world["admin"], world["manager"], world["b_key"]
    calls = [
        admin.get("/key/info", auth_key=manager, key=b_key),
        admin.post("/key/update", {"key": b_key, "key_alias": "x"}, auth_key=manager),
        admin.post("/key/delete", {"keys": [b_key]}, auth_key=manager),
        admin.post("/key/block", {"key": b_key}, auth_key=manager),
        admin.post("/key/regenerate", {"key": b_key}, auth_key=manager),
        admin.get("/key/list", auth_key=manager, team_id=world["b"]),
    ]
    assert [c.status_code for c in calls] == [403] * len(calls)
    assert admin.ok("GET", "/key/info", key=b_key)["info"]["blocked"] is False


def test_management_key_cannot_regenerate_a_more_powerful_key(world: dict[str, Any]) -> None:
    response = world["admin"].post(
        "/key/regenerate", {"key": world["a_big_key"]}, auth_key=world["manager"]
    )
    assert response.status_code == 403
    assert "key" not in response.json()


def test_management_key_lists_only_its_team(world: dict[str, Any]) -> None:
    admin = world["admin"]
    listed = admin.get("/key/list", auth_key=world["manager"], size=100).json()
    assert world["b_key"] not in listed["keys"]
    assert world["a_big_key"] in listed["keys"]
    teams = admin.get("/team/list", auth_key=world["manager"]).json()
    assert [t["team_id"] for t in teams] == [world["a"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/team/new", {"team_alias": "mine"}, id="team-new"),
        pytest.param("POST", "/team/update", {"team_id": "x", "max_budget": 1}, id="team-update"),
        pytest.param("POST", "/team/delete", {"team_ids": ["x"]}, id="team-delete"),
        pytest.param("POST", "/user/new", {"user_id": "u"}, id="user-new"),
        pytest.param("POST", "/user/update", {"user_id": "u"}, id="user-update"),
        pytest.param("POST", "/user/delete", {"user_ids": ["u"]}, id="user-delete"),
        pytest.param("GET", "/user/list", None, id="user-list"),
        pytest.param("GET", "/user/info?user_id=u", None, id="user-info"),
    ],
)
def test_management_key_may_not_manage_teams_or_users(
    world: dict[str, Any], method: str, path: str, body: Any
) -> None:
    admin = world["admin"]
    if method == "GET":
        response = admin.get(path, auth_key=world["manager"])
    else:
        response = admin.post(path, body, auth_key=world["manager"])
    assert response.status_code == 403, response.text


def test_team_info_only_for_own_team(world: dict[str, Any]) -> None:
    admin = world["admin"]
    own = admin.get("/team/info", auth_key=world["manager"], team_id=world["a"])
    assert own.status_code == 200 and own.json()["team_id"] == world["a"]
    assert world["manager"] not in own.text
    other = admin.get("/team/info", auth_key=world["manager"], team_id=world["b"])
    assert other.status_code == 403


def test_read_only_key_may_only_read_its_team(world: dict[str, Any]) -> None:
    admin, reader = world["admin"], world["reader"]
    assert admin.get("/key/list", auth_key=reader).status_code == 200
    assert admin.get("/key/info", auth_key=reader, key=world["a_big_key"]).status_code == 200
    assert admin.get("/key/info", auth_key=reader, key=world["b_key"]).status_code == 403
    assert admin.get("/team/info", auth_key=reader, team_id=world["a"]).status_code == 200
    writes = [
        admin.post("/key/generate", {"max_budget": 0}, auth_key=reader),
        admin.post("/key/block", {"key": world["a_big_key"]}, auth_key=reader),
        admin.post("/key/delete", {"keys": [world["a_big_key"]]}, auth_key=reader),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403]


ADMIN_ROUTES = [
    ("POST", "/key/generate"),
    ("POST", "/key/update"),
    ("POST", "/key/delete"),
    ("GET", "/key/info"),
    ("GET", "/key/list"),
    ("POST", "/key/regenerate"),
    ("POST", "/key/block"),
    ("POST", "/key/unblock"),
    ("POST", "/team/new"),
    ("POST", "/team/update"),
    ("POST", "/team/delete"),
    ("GET", "/team/info"),
    ("GET", "/team/list"),
    ("POST", "/user/new"),
    ("POST", "/user/update"),
    ("POST", "/user/delete"),
    ("GET", "/user/info"),
    ("GET", "/user/list"),
    ("GET", "/spend/logs"),
    ("GET", "/global/spend/report"),
    ("GET", "/model/info"),
]


# A key may always read itself (tests/admin/test_self_service.py) and the models it may call
# (tests/admin/test_litellm_e2e_gaps.py): these answer it.
SELF_READS = {
    ("GET", "/key/info"),
    ("GET", "/team/info"),
    ("GET", "/spend/logs"),
    ("GET", "/model/info"),
}


def test_inference_key_gets_403_on_every_admin_route(world: dict[str, Any]) -> None:
    admin, key = world["admin"], world["inference"]
    for method, path in ADMIN_ROUTES:
        if (method, path) in SELF_READS:
            continue
        if method == "GET":
            response = admin.get(path, auth_key=key)
        else:
            response = admin.post(path, {}, auth_key=key)
        assert response.status_code == 403, (path, response.text)
        assert error_of(response)["type"] == "permission_error"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param(b"Bearer sk-" + b"a" * 10_000, id="10kb"),
        pytest.param(b'Bearer "sk-quoted"', id="quotes"),
        pytest.param(b"Bearer sk-\xff\xfe\x80", id="non-ascii"),
        pytest.param(b"Bearer sk-%00nul", id="nul-like"),
        pytest.param(b"Bearer ' OR 1=1 --", id="sql"),
        pytest.param(b"Bearer sk-nope", id="unknown"),
    ],
)
def test_bad_credentials_get_a_plain_401(
    gateway: AdminGateway, authorization: bytes | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    http = gateway.client
    for method, path in ADMIN_ROUTES:
        response = http.request(
            method, path, headers=headers, json={} if method == "POST" else None
        )
        assert response.status_code == 401, (path, response.text)
        error = error_of(response)
        assert error["type"] == "authentication_error"
        assert "Traceback" not in response.text and "sk-" not in error["message"]


def test_admin_api_is_disabled_without_a_master_key(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("admin-open")
    with running_gateway(fake_openai, tmp, master_key=False) as open_gateway:
        for method, path in ADMIN_ROUTES:
            response = open_gateway.client.request(
                method, path, json={} if method == "POST" else None
            )
            assert response.status_code == 403, (path, response.text)
            assert error_of(response)["message"] == "admin API disabled: no master key configured"
