"""Organizations: budgets and model lists that cap their teams, shared atomically."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway
from tests.ledger.hierarchy_gateway import (
    INPUT_PRICE,
    MASTER,
    OUTPUT_PRICE,
    bearer,
    chat,
    gateway,
    new_key,
    post,
)


async def org_with_two_teams(client: httpx.AsyncClient, **org: object) -> tuple[str, list[str]]:
    made = await post(client, "/organization/new", {"organization_alias": "acme", **org})
    org_id = made["organization_id"]
    keys = []
    for alias in ("red", "blue"):
        team = await post(client, "/team/new", {"team_alias": alias, "organization_id": org_id})
        keys.append(await new_key(client, team_id=team["team_id"]))
    return org_id, keys


async def test_organization_crud(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        made = await post(
            client,
            "/organization/new",
            {"organization_id": "org-1", "organization_alias": "Acme", "max_budget": 10},
        )
        assert made["litellm_budget_table"]["max_budget"] == 10
        update = await client.patch(
            "/organization/update",
            json={"organization_id": "org-1", "models": ["priced"]},
            headers=MASTER,
        )
        assert update.status_code == 200 and update.json()["models"] == ["priced"]
        info = await client.get(
            "/organization/info", params={"organization_id": "org-1"}, headers=MASTER
        )
        assert info.json()["organization_alias"] == "Acme"
        listed = (await client.get("/organization/list", headers=MASTER)).json()
        assert [o["organization_id"] for o in listed] == ["org-1"]
        await post(client, "/team/new", {"team_id": "t1", "organization_id": "org-1"})
        busy = await client.request(
            "DELETE", "/organization/delete", json={"organization_ids": ["org-1"]}, headers=MASTER
        )
        assert busy.status_code == 400 and "t1" in busy.json()["error"]["message"]
        await post(client, "/team/delete", {"team_ids": ["t1"]})
        gone = await client.request(
            "DELETE", "/organization/delete", json={"organization_ids": ["org-1"]}, headers=MASTER
        )
        assert gone.status_code == 200
        missing = await client.get(
            "/organization/info", params={"organization_id": "org-1"}, headers=MASTER
        )
        assert missing.status_code == 404


async def test_organization_model_list_caps_its_teams(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        _, keys = await org_with_two_teams(client, models=["priced"])
        ok = await client.post("/v1/chat/completions", json=chat(2), headers=bearer(keys[0]))
        assert ok.status_code == 200
        denied = await client.post(
            "/v1/chat/completions", json=chat(2, model="other"), headers=bearer(keys[1])
        )
        assert denied.status_code == 403
        assert "organization" in denied.json()["error"]["message"]


def trickle_config(upstream: FakeOpenAI) -> str:
    """A deployment on the fake OpenAI server that answers after 50 ms (11 prompt and 20
    completion tokens), so the 200 calls really are in flight together."""
    return (
        "model_list:\n"
        "  - model_name: slow\n"
        "    litellm_params:\n"
        "      model: openai/fake-trickle\n"
        f"      api_base: {upstream.base_url}\n"
        "      api_key: os.environ/TEST_UPSTREAM_KEY\n"
        "    model_info:\n"
        f"      input_cost_per_token: {INPUT_PRICE}\n"
        f"      output_cost_per_token: {OUTPUT_PRICE}\n"
        "general_settings:\n"
        "  master_key: os.environ/TEST_MASTER_KEY\n"
    )


async def test_200_way_race_on_an_organization_budget_shared_by_two_teams_never_overshoots(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    budget = 0.003
    # The fake bills 20 completion tokens whatever the limit: no cap below that.
    built = await InProcessGateway.build(
        tmp_path, trickle_config(fake_openai), min_capped_tokens=20
    )
    async with built.running() as client:
        org_id, keys = await org_with_two_teams(client, max_budget=budget)
        body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 150}
        replies = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=body, headers=bearer(keys[i % 2]))
                for i in range(200)
            )
        )
        ok = [r for r in replies if r.status_code == 200]
        refused = [r for r in replies if r.status_code == 429]
        assert ok and refused and len(ok) + len(refused) == 200
        messages = [r.json()["error"]["message"] for r in refused]
        assert all("would exceed the organization budget" in m for m in messages)
        assert any("in flight" in m for m in messages), "the calls raced"
        info = (
            await client.get(
                "/organization/info", params={"organization_id": org_id}, headers=MASTER
            )
        ).json()
        billed = sum(float(r.headers["x-tollway-response-cost"]) for r in ok)
        assert info["spend"] <= budget
        assert abs(info["spend"] - billed) < 1e-9
        served = {r.request.headers["authorization"] for r in ok}
        assert len(served) == 2, "both teams spent from the one budget"
