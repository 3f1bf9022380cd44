"""/key/*: generation, secrecy, validation, block/delete/expiry/regenerate, allowlists."""

from __future__ import annotations

import sqlite3

import pytest

from proxy.auth import hash_key
from tests.admin import Admin, AdminGateway, error_of


def test_generate_returns_the_secret_once_and_info_never_shows_it(admin: Admin) -> None:
    created = admin.generate(key_alias="once", duration="30d", models=["gpt-test"])
    secret = created["key"]
    assert secret.startswith("sk-") and len(secret) >= 3 + 43
    assert created["token"] == hash_key(secret)
    assert created["key_name"] == "sk-..." + secret[-4:]
    assert created["key_alias"] == "once" and created["models"] == ["gpt-test"]
    assert created["expires"].endswith("Z") and created["created_at"].endswith("Z")
    for lookup in (secret, created["token"]):
        response = admin.get("/key/info", key=lookup)
        assert response.status_code == 200, response.text
        assert secret not in response.text
        assert response.json()["info"]["token"] == created["token"]
    listed = admin.get("/key/list", return_full_object="true")
    assert secret not in listed.text
    assert created["token"] in listed.text


def test_only_the_hash_is_in_the_database(admin: Admin, gateway: AdminGateway) -> None:
    secret = admin.generate(key_alias="hashed")["key"]
    db_path = gateway.db_path

    def dump() -> bytes:
        with sqlite3.connect(db_path) as conn:
            rows = conn.execute("SELECT * FROM keys").fetchall()
        return repr(rows).encode()

    text = dump()
    assert hash_key(secret).encode() in text
    assert secret.encode() not in text
    raw = b"".join(
        p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith("tollway.db")
    )
    assert secret.encode() not in raw
    assert secret[3:].encode() not in raw


def test_custom_key_must_start_with_sk(admin: Admin) -> None:
    response = admin.post("/key/generate", {"key": "pk-1234567890"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "key"
    custom = "sk-custom-" + "x" * 20
    assert admin.generate(key=custom)["token"] == hash_key(custom)
    again = admin.post("/key/generate", {"key": custom})
    assert again.status_code == 400 and error_of(again)["param"] == "key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"max_budgett": 1}, "max_budgett", id="typo"),
        pytest.param({"token_hash": "0" * 64}, "token_hash", id="mass-assign-hash"),
        pytest.param({"created_by": "someone"}, "created_by", id="mass-assign-created-by"),
        pytest.param({"max_budget": -1}, "max_budget", id="negative-budget"),
        pytest.param({"max_budget": "10"}, "max_budget", id="string-budget"),
        pytest.param({"max_budget": True}, "max_budget", id="bool-budget"),
        pytest.param({"rpm_limit": -5}, "rpm_limit", id="negative-rpm"),
        pytest.param({"tpm_limit": 1.5}, "tpm_limit", id="fractional-tpm"),
        pytest.param({"max_parallel_requests": "3"}, "max_parallel_requests", id="string-par"),
        pytest.param({"budget_duration": "1x"}, "budget_duration", id="bad-budget-duration"),
        pytest.param({"duration": "forever"}, "duration", id="bad-duration"),
        pytest.param({"key_type": "superuser"}, "key_type", id="bad-key-type"),
        pytest.param({"team_id": "no-such-team"}, "team_id", id="unknown-team"),
    ],
)
def test_generate_rejects_bad_fields_naming_them(
    admin: Admin, body: dict[str, object], param: str
) -> None:
    response = admin.post("/key/generate", body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]


def test_malformed_json_is_400(admin: Admin) -> None:
    response = admin.http.post("/key/generate", content=b"{not json", headers=admin._headers(None))
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_update_changes_only_given_fields_and_rejects_mass_assignment(admin: Admin) -> None:
    created = admin.generate(key_alias="upd", max_budget=5, rpm_limit=10, metadata={"a": 1})
    updated = admin.ok("POST", "/key/update", {"key": created["key"], "max_budget": 7})
    assert updated["max_budget"] == 7
    assert updated["rpm_limit"] == 10 and updated["key_alias"] == "upd"
    assert updated["metadata"] == {"a": 1}
    assert created["key"] not in str(updated)
    for field, value in (("token_hash", "x"), ("created_at", 1.0), ("key_name", "x")):
        response = admin.post("/key/update", {"key": created["token"], field: value})
        assert response.status_code == 400, response.text
        assert error_of(response)["param"] == field
    info = admin.ok("GET", "/key/info", key=created["token"])["info"]
    assert info["max_budget"] == 7 and info["spend"] == 0


def test_blocked_key_gets_403_and_unblocked_key_works(admin: Admin) -> None:
    secret = admin.generate()["key"]
    assert admin.chat(secret).status_code == 200
    admin.ok("POST", "/key/block", {"key": secret})
    blocked = admin.chat(secret)
    assert blocked.status_code == 403
    assert error_of(blocked)["type"] == "permission_error"
    admin.ok("POST", "/key/unblock", {"key": hash_key(secret)})
    assert admin.chat(secret).status_code == 200


def test_deleted_key_gets_401(admin: Admin) -> None:
    created = admin.generate()
    assert admin.chat(created["key"]).status_code == 200
    deleted = admin.ok("POST", "/key/delete", {"keys": [created["token"]]})
    assert deleted == {"deleted_keys": [created["token"]]}
    response = admin.chat(created["key"])
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    assert admin.get("/key/info", key=created["token"]).status_code == 404
    assert admin.post("/key/delete", {"keys": [created["token"]]}).status_code == 404


def test_expired_key_gets_401(admin: Admin, gateway: AdminGateway) -> None:
    secret = admin.generate(duration="1s")["key"]
    gateway.clock.advance(1.2)
    response = admin.chat(secret)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"


def test_regenerate_retires_the_old_secret_and_keeps_spend(admin: Admin) -> None:
    created = admin.generate(key_alias="regen", max_budget=100)
    old = created["key"]
    assert admin.chat(old).status_code == 200
    spend_before = admin.ok("GET", "/key/info", key=created["token"])["info"]["spend"]
    assert spend_before > 0
    regenerated = admin.ok("POST", "/key/regenerate", {"key": old})
    new = regenerated["key"]
    assert new != old and new.startswith("sk-")
    assert regenerated["token"] == hash_key(new)
    assert regenerated["key_alias"] == "regen" and regenerated["max_budget"] == 100
    assert regenerated["spend"] == pytest.approx(spend_before)
    assert admin.chat(old).status_code == 401
    assert admin.chat(new).status_code == 200
    by_path = admin.ok("POST", f"/key/{regenerated['token']}/regenerate")
    assert admin.chat(new).status_code == 401
    assert admin.chat(by_path["key"]).status_code == 200


def test_model_allowlist_is_enforced_on_inference(admin: Admin) -> None:
    secret = admin.generate(models=["gpt-test"])["key"]
    assert admin.chat(secret, "gpt-test").status_code == 200
    response = admin.chat(secret, "fake-ok")
    assert response.status_code == 403
    assert error_of(response)["type"] == "permission_error"


def test_key_list_pages_and_filters(admin: Admin) -> None:
    team = admin.new_team(team_alias="listing")
    tokens = [admin.generate(team_id=team)["token"] for _ in range(3)]
    first = admin.ok("GET", "/key/list", team_id=team, size=2, page=1)
    second = admin.ok("GET", "/key/list", team_id=team, size=2, page=2)
    assert first["total_count"] == 3 and first["total_pages"] == 2
    assert first["current_page"] == 1
    assert first["keys"] + second["keys"] == tokens
    bad = admin.get("/key/list", size=0)
    assert bad.status_code == 400 and error_of(bad)["param"] == "size"
