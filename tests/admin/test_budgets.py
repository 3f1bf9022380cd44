"""Reusable budgets: one set of limits lent to end users, organizations and keys."""

from __future__ import annotations

from pathlib import Path

from tests.ledger.hierarchy_gateway import MASTER, bearer, chat, gateway, new_key, post


async def test_budget_crud(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        made = await post(
            client, "/budget/new", {"budget_id": "small", "max_budget": 1, "rpm_limit": 9}
        )
        assert (made["budget_id"], made["max_budget"], made["rpm_limit"]) == ("small", 1, 9)
        await post(client, "/budget/update", {"budget_id": "small", "budget_duration": "monthly"})
        info = await client.post("/budget/info", json={"budgets": ["small"]}, headers=MASTER)
        assert info.json()[0]["budget_duration"] == "monthly"
        assert [b["budget_id"] for b in (await client.get("/budget/list", headers=MASTER)).json()]
        bad = await client.post(
            "/budget/new", json={"budget_duration": "fortnightly"}, headers=MASTER
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_duration"
        await post(client, "/budget/delete", {"id": "small"})
        assert (await client.get("/budget/list", headers=MASTER)).json() == []
        unknown = await client.post(
            "/customer/new", json={"user_id": "u", "budget_id": "nope"}, headers=MASTER
        )
        assert unknown.status_code == 400


async def test_a_budget_caps_each_borrower_and_changes_with_it(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        await post(client, "/budget/new", {"budget_id": "tiny", "max_budget": 0.0003})
        await post(client, "/customer/new", {"user_id": "a", "budget_id": "tiny"})
        await post(client, "/customer/new", {"user_id": "b", "budget_id": "tiny"})
        key = await new_key(client)

        async def spend_out(user: str) -> int:
            for calls in range(20):
                reply = await client.post(
                    "/v1/chat/completions", json=chat(100, user=user), headers=bearer(key)
                )
                if reply.status_code == 429:
                    assert "customer budget" in reply.json()["error"]["message"]
                    return calls
            raise AssertionError("never refused")

        assert await spend_out("a") >= 1
        assert await spend_out("b") >= 1  # b spends its own copy of the budget
        await post(client, "/budget/update", {"budget_id": "tiny", "max_budget": 1.0})
        again = await client.post(
            "/v1/chat/completions", json=chat(100, user="a"), headers=bearer(key)
        )
        assert again.status_code == 200


async def test_budget_id_on_a_key_and_an_organization(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        await post(client, "/budget/new", {"budget_id": "tiny", "max_budget": 0.0003})
        key = await new_key(client, budget_id="tiny")
        codes = [
            (
                await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
            ).status_code
            for _ in range(5)
        ]
        assert codes[0] == 200 and codes[-1] == 429
        org = await post(client, "/organization/new", {"budget_id": "tiny"})
        assert org["litellm_budget_table"]["max_budget"] == 0.0003
        team = await post(client, "/team/new", {"organization_id": org["organization_id"]})
        team_key = await new_key(client, team_id=team["team_id"])
        codes = [
            (
                await client.post("/v1/chat/completions", json=chat(100), headers=bearer(team_key))
            ).status_code
            for _ in range(5)
        ]
        assert codes[0] == 200 and codes[-1] == 429
