"""/key/generate takes every field of LiteLLM's GenerateKeyRequest, and the enforced ones
are enforced on calls: aliases, per-model budgets and limits, enforced params, spend."""

from __future__ import annotations

from typing import Any

from proxy.admin.key_fields import METADATA_FIELDS
from tests.admin import Admin, error_of

# Every field of LiteLLM's GenerateKeyRequest (its GenerateRequestBase, KeyRequestBase and
# GenerateKeyRequest), with a value of the type LiteLLM's scripts send.
LITELLM_GENERATE_KEY_REQUEST: dict[str, Any] = {
    "key_alias": "every-field",
    "duration": "30d",
    "models": ["gpt-test"],
    "spend": 0.5,
    "max_budget": 10,
    "user_id": "every-field-user",
    "team_id": None,
    "agent_id": "agent-1",
    "max_parallel_requests": 5,
    "metadata": {"env": "test"},
    "tpm_limit": 100000,
    "rpm_limit": 100,
    "budget_duration": "30d",
    "budget_limits": [{"budget_duration": "1d", "max_budget": 1.0}],
    "allowed_cache_controls": ["no-cache"],
    "config": {"a": 1},
    "permissions": {"get_spend_routes": False},
    "model_max_budget": {"gpt-test": {"budget_limit": "5", "time_period": "1d"}},
    "budget_fallbacks": {"gpt-test": ["fake-ok"]},
    "model_rpm_limit": {"gpt-test": 50},
    "model_tpm_limit": {"gpt-test": 50000},
    "mcp_rpm_limit": {"server": 5},
    "tag_rpm_limit": {"tag": 5},
    "guardrails": [],
    "policies": [],
    "prompts": [],
    "blocked": False,
    "aliases": {"nickname": "gpt-test"},
    "object_permission": {"vector_stores": []},
    "key": "sk-every-field-key-0123456789",
    "budget_id": None,
    "tags": ["team-a"],
    "enforced_params": [],
    "allowed_routes": [],
    "allowed_passthrough_routes": [],
    "allowed_vector_store_indexes": [],
    "rpm_limit_type": "guaranteed_throughput",
    "tpm_limit_type": "best_effort_throughput",
    "organization_id": None,
    "project_id": None,
    "access_group_ids": [],
    "router_settings": {},
    "auto_rotate": False,
    "rotation_interval": None,
    "soft_budget": 8,
    "send_invite_email": False,
    "key_type": "llm_api",
    "disable_global_guardrails": False,
}


def chat(admin: Admin, key: str, model: str, **fields: Any) -> Any:
    return admin.http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], **fields},
        headers={"authorization": f"Bearer {key}"},
    )


def test_every_litellm_generate_key_field_is_accepted_and_shown(admin: Admin) -> None:
    created = admin.generate(**LITELLM_GENERATE_KEY_REQUEST)
    info = admin.ok("GET", "/key/info", key=created["token"])["info"]
    for field in ("aliases", "config", "permissions", "model_max_budget", "model_rpm_limit"):
        assert info[field] == LITELLM_GENERATE_KEY_REQUEST[field], field
    assert info["soft_budget"] == 8 and info["tags"] == ["team-a"]
    assert info["spend"] == 0.5
    assert set(METADATA_FIELDS) <= set(info)
    # The key still works: its aliases reach its model.
    assert chat(admin, created["key"], "nickname").status_code == 200


def test_unknown_field_is_still_a_400_naming_it(admin: Admin) -> None:
    response = admin.post("/key/generate", {"model_max_budgett": {}})
    assert response.status_code == 400
    assert error_of(response)["param"] == "model_max_budgett"


def test_key_for_an_unknown_user_creates_the_user(admin: Admin) -> None:
    created = admin.generate(user_id="made-by-key")
    assert created["user_id"] == "made-by-key"
    info = admin.ok("GET", "/user/info", user_id="made-by-key")
    assert [k["token"] for k in info["keys"]] == [created["token"]]


def test_aliases_rename_the_model_and_the_allowlist_applies_to_the_target(admin: Admin) -> None:
    key = admin.generate(models=["gpt-test"], aliases={"cheap": "gpt-test", "other": "fake-ok"})
    assert chat(admin, key["key"], "cheap").status_code == 200
    refused = chat(admin, key["key"], "other")
    assert refused.status_code == 403 and error_of(refused)["param"] == "model"


def test_model_max_budget_refuses_that_model_only(admin: Admin) -> None:
    key = admin.generate(model_max_budget={"gpt-test": {"budget_limit": 1e-9, "time_period": "1d"}})
    refused = chat(admin, key["key"], "gpt-test")
    assert refused.status_code == 429
    assert error_of(refused)["type"] == "budget_exceeded"
    assert "Budget has been exceeded!" in error_of(refused)["message"]
    assert chat(admin, key["key"], "fake-ok").status_code == 200


def test_model_max_budget_must_be_a_budget(admin: Admin) -> None:
    for bad in ({"gpt-test": "lots"}, {"gpt-test": {"budget_limit": 1, "time_period": "1x"}}):
        response = admin.post("/key/generate", {"model_max_budget": bad})
        assert response.status_code == 400, response.text
        assert error_of(response)["param"] == "model_max_budget"


def test_model_rpm_limit_limits_that_model_only(admin: Admin) -> None:
    key = admin.generate(model_rpm_limit={"gpt-test": 1})
    assert chat(admin, key["key"], "gpt-test").status_code == 200
    limited = chat(admin, key["key"], "gpt-test")
    assert limited.status_code == 429 and error_of(limited)["type"] == "rate_limit_error"
    assert chat(admin, key["key"], "fake-ok").status_code == 200


def test_model_limits_follow_a_key_update(admin: Admin) -> None:
    key = admin.generate()
    assert chat(admin, key["key"], "gpt-test").status_code == 200
    admin.ok("POST", "/key/update", {"key": key["key"], "model_rpm_limit": {"gpt-test": 1}})
    assert chat(admin, key["key"], "gpt-test").status_code == 200
    assert chat(admin, key["key"], "gpt-test").status_code == 429


def test_enforced_params_must_be_in_the_body(admin: Admin) -> None:
    key = admin.generate(enforced_params=["user", "metadata.generation_name"])
    missing = chat(admin, key["key"], "gpt-test", user="u1")
    assert missing.status_code == 400
    assert error_of(missing)["param"] == "metadata.generation_name"
    ok = chat(admin, key["key"], "gpt-test", user="u1", metadata={"generation_name": "g"})
    assert ok.status_code == 200, ok.text


def test_soft_budget_never_blocks(admin: Admin) -> None:
    key = admin.generate(soft_budget=0)
    assert chat(admin, key["key"], "gpt-test").status_code == 200
    assert chat(admin, key["key"], "gpt-test").status_code == 200


def test_spend_is_master_only_and_shows_in_info(admin: Admin) -> None:
    team = admin.new_team(team_alias="spenders")
    manager = admin.generate(team_id=team, key_type="management")["key"]
    refused = admin.post("/key/generate", {"spend": 1}, auth_key=manager)
    assert refused.status_code == 403 and error_of(refused)["param"] == "spend"
    key = admin.generate(spend=0.25)
    assert admin.ok("GET", "/key/info", key=key["token"])["info"]["spend"] == 0.25
    admin.ok("POST", "/key/update", {"key": key["token"], "spend": 0})
    assert admin.ok("GET", "/key/info", key=key["token"])["info"]["spend"] == 0


def test_user_update_sets_spend(admin: Admin) -> None:
    admin.ok("POST", "/user/new", {"user_id": "spendy", "auto_create_key": False})
    updated = admin.ok("POST", "/user/update", {"user_id": "spendy", "spend": 2.5})
    assert updated["data"]["spend"] == 2.5
    assert admin.ok("GET", "/user/info", user_id="spendy")["user_info"]["spend"] == 2.5


def test_a_refused_key_creates_no_user(admin: Admin) -> None:
    response = admin.post("/key/generate", {"user_id": "ghost", "team_id": "no-such-team"})
    assert response.status_code == 400 and error_of(response)["param"] == "team_id"
    assert admin.get("/user/info", user_id="ghost").status_code == 404
