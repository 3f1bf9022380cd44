"""What LiteLLM's proxy e2e tests showed missing, as Tollway's own tests: image models on the
fake upstream, ``/model/info`` for a plain key, a budget's ``budget_reset_at``,
``/health/readiness/details``, an end user's rate limits through its ``budget_id`` (whichever
key calls), and batch completions (a comma-separated ``model``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway
from tests.ledger.hierarchy_gateway import MASTER, bearer, chat, gateway, new_key, post


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _key_spend(client: httpx.AsyncClient, key: str) -> float:
    info = await client.get("/key/info", params={"key": key}, headers=MASTER)
    assert info.status_code == 200, info.text
    spend = info.json()["info"]["spend"]
    assert isinstance(spend, float | int)
    return float(spend)


# -- images on the fake upstream ---------------------------------------------------------

_IMAGES = """model_list:
  - model_name: dall-e-3
    litellm_params:
      model: openai/dall-e-3
      api_base: {base}
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""


async def test_image_model_on_the_fake_upstream_is_served_and_billed_per_image(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    built = await InProcessGateway.build(tmp_path, _IMAGES.format(base=fake_openai.base_url))
    async with built.running() as client:
        key = await new_key(client, models=["dall-e-3"])
        for path in ("/v1/images/generations", "/images/generations"):
            reply = await client.post(
                path,
                json={"model": "dall-e-3", "prompt": "an otter", "n": 2},
                headers=bearer(key),
            )
            assert reply.status_code == 200, reply.text
            assert len(reply.json()["data"]) == 2
            assert float(reply.headers["x-tollway-response-cost"]) > 0
        assert fake_openai.last_request()["path"] == "/v1/images/generations"
        assert await _key_spend(client, key) > 0


# -- /model/info for a plain key ----------------------------------------------------------


async def test_plain_key_reads_model_info_of_its_own_models_only(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client, models=["priced"])
        mine = await client.get("/model/info", headers=bearer(key))
        assert mine.status_code == 200, mine.text
        data = mine.json()["data"]
        assert [d["model_name"] for d in data] == ["priced"]
        entry = data[0]
        assert "api_key" not in entry["litellm_params"]
        assert "deployment_state" not in entry["model_info"]  # the router's state: admins only
        model_id = entry["model_info"]["id"]
        one = await client.get(
            "/model/info", params={"litellm_model_id": model_id}, headers=bearer(key)
        )
        assert one.json()["data"] == [entry]
        everything = (await client.get("/model/info", headers=MASTER)).json()["data"]
        other_id = next(d["model_info"]["id"] for d in everything if d["model_name"] == "other")
        hidden = await client.get(
            "/model/info", params={"litellm_model_id": other_id}, headers=bearer(key)
        )
        assert hidden.status_code == 200 and hidden.json()["data"] == []
        unrestricted = await new_key(client)
        names = {
            d["model_name"]
            for d in (await client.get("/model/info", headers=bearer(unrestricted))).json()["data"]
        }
        assert names == {"priced", "other"}
        bad = await client.get("/model/info", headers=bearer("sk-not-a-key"))
        assert bad.status_code == 401


# -- budgets ------------------------------------------------------------------------------


async def test_new_budget_with_a_duration_reports_when_its_period_ends(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        made = await post(
            client,
            "/budget/new",
            {"budget_id": "daily", "budget_duration": "1d", "max_budget": 0.02},
        )
        assert _time(made["budget_reset_at"]) == _time(made["created_at"]) + timedelta(days=1)
        listed = (await client.get("/budget/list", headers=MASTER)).json()
        assert listed[0]["budget_reset_at"] == made["budget_reset_at"]
        plain = await post(client, "/budget/new", {"budget_id": "no-period", "max_budget": 1})
        assert plain["budget_reset_at"] is None


# -- /health/readiness/details ------------------------------------------------------------


async def test_readiness_details_need_the_master_key_and_name_the_version(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as client:
        details = await client.get("/health/readiness/details", headers=MASTER)
        assert details.status_code == 200, details.text
        body = details.json()
        assert body["status"] == "healthy"
        assert body["litellm_version"] == body["tollway_version"]
        assert body["db"] == "connected" and body["cache"] is None
        assert body["all_model_groups_usable"] is True
        key = await new_key(client)
        assert (
            await client.get("/health/readiness/details", headers=bearer(key))
        ).status_code == 403
        assert (await client.get("/health/readiness/details")).status_code == 401
        assert MASTER_KEY not in details.text


# -- an end user's limits through its budget_id --------------------------------------------


async def test_end_user_tpm_limit_from_its_budget_holds_for_master_and_virtual_keys(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as client:
        await post(client, "/budget/new", {"budget_id": "free-tier", "tpm_limit": 2})
        for user in ("eu-1", "eu-2"):
            await post(client, "/end_user/new", {"user_id": user, "budget_id": "free-tier"})
        key = await new_key(client)
        for user, headers in (("eu-1", MASTER), ("eu-2", bearer(key))):
            first = await client.post(
                "/v1/chat/completions", json=chat(5, user=user), headers=headers
            )
            assert first.status_code == 200, first.text
            second = await client.post(
                "/v1/chat/completions", json=chat(5, user=user), headers=headers
            )
            assert second.status_code == 429, (user, second.text)
            assert second.json()["error"]["type"] == "rate_limit_error"
            assert "customer" in second.json()["error"]["message"]
            assert int(second.headers["retry-after"]) >= 1
        # Not the key's or master's limit: another end user, and no end user, still pass.
        for body in (chat(5, user="someone-else"), chat(5)):
            again = await client.post("/v1/chat/completions", json=body, headers=MASTER)
            assert again.status_code == 200, again.text


# -- batch completions --------------------------------------------------------------------


def _models(replies: list[dict[str, Any]]) -> list[str]:
    return [reply["model"] for reply in replies]


async def test_comma_separated_model_calls_each_model_and_bills_each_call(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client)
        single = await client.post("/v1/chat/completions", json=chat(20), headers=bearer(key))
        single_cost = float(single.headers["x-tollway-response-cost"])
        before = await _key_spend(client, key)
        reply = await client.post(
            "/chat/completions", json=chat(20, model="priced, other"), headers=bearer(key)
        )
        assert reply.status_code == 200, reply.text
        replies = reply.json()
        assert isinstance(replies, list) and len(replies) == 2
        assert _models(replies) == ["priced", "other"]
        assert all(r["choices"][0]["message"]["content"] for r in replies)
        call_ids = reply.headers["x-tollway-call-id"].split(",")
        assert len(set(call_ids)) == 2
        cost = float(reply.headers["x-tollway-response-cost"])
        assert abs(cost - 2 * single_cost) < 1e-9
        assert abs(await _key_spend(client, key) - before - cost) < 1e-9


async def test_batch_completion_keeps_each_models_refusal_in_its_place(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client, models=["priced"])
        mixed = await client.post(
            "/v1/chat/completions", json=chat(5, model="other,priced"), headers=bearer(key)
        )
        assert mixed.status_code == 200, mixed.text
        refused, served = mixed.json()
        assert refused["error"]["type"] == "permission_error"
        assert served["model"] == "priced"
        none = await client.post(
            "/v1/chat/completions", json=chat(5, model="other,nope"), headers=bearer(key)
        )
        assert none.status_code == 403
        assert none.json()["error"]["type"] == "permission_error"
        streamed = await client.post(
            "/v1/chat/completions",
            json=chat(5, model="priced,other", stream=True),
            headers=bearer(key),
        )
        assert streamed.status_code == 400
        assert streamed.json()["error"]["param"] == "model"
        empty = await client.post(
            "/v1/chat/completions", json=chat(5, model="priced,"), headers=bearer(key)
        )
        assert empty.status_code == 400
