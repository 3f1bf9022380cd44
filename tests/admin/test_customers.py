"""End users (customers): named by the request, with budgets, limits, blocking, in reports."""

from __future__ import annotations

from pathlib import Path

from tests.ledger.hierarchy_gateway import MASTER, bearer, chat, gateway, new_key, post


async def test_customer_crud_under_both_prefixes(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        made = await post(
            client,
            "/customer/new",
            {"user_id": "acme-1", "max_budget": 1.5, "allowed_model_region": "eu", "alias": "A"},
        )
        assert made["user_id"] == "acme-1"
        assert made["allowed_model_region"] == "eu"
        assert made["spend"] == 0.0
        await post(client, "/end_user/update", {"user_id": "acme-1", "rpm_limit": 5})
        info = (
            await client.get("/end_user/info", params={"end_user_id": "acme-1"}, headers=MASTER)
        ).json()
        assert (info["rpm_limit"], info["max_budget"], info["alias"]) == (5, 1.5, "A")
        listed = (await client.get("/customer/list", headers=MASTER)).json()
        assert [c["user_id"] for c in listed] == ["acme-1"]
        bad = await client.post("/customer/new", json={"user_id": "x", "typo": 1}, headers=MASTER)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "typo"
        region = await client.post(
            "/customer/new", json={"user_id": "x", "allowed_model_region": "mars"}, headers=MASTER
        )
        assert region.status_code == 400
        await post(client, "/customer/delete", {"user_ids": ["acme-1"]})
        gone = await client.get("/customer/info", params={"end_user_id": "acme-1"}, headers=MASTER)
        assert gone.status_code == 404
        key = await new_key(client)
        denied = await client.get("/customer/list", headers=bearer(key))
        assert denied.status_code == 403


async def test_end_user_budget_is_enforced_from_the_user_field_and_the_headers(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as client:
        await post(client, "/customer/new", {"user_id": "acme", "max_budget": 0.0004})
        key = await new_key(client)  # the key itself has no budget
        codes = []
        for i in range(6):
            if i % 2:
                body, headers = chat(100), {**bearer(key), "x-litellm-end-user-id": "acme"}
            else:
                body, headers = chat(100, user="acme"), bearer(key)
            reply = await client.post("/v1/chat/completions", json=body, headers=headers)
            codes.append(reply.status_code)
        assert 200 in codes and codes[-1] == 429
        assert "would exceed the customer budget" in reply.json()["error"]["message"]
        info = (
            await client.get("/customer/info", params={"end_user_id": "acme"}, headers=MASTER)
        ).json()
        assert 0 < info["spend"] <= 0.0004
        # Another end user of the same key is not held by acme's budget.
        other = await client.post(
            "/v1/chat/completions", json=chat(100, user="someone-else"), headers=bearer(key)
        )
        assert other.status_code == 200
        logs = (await client.get("/spend/logs", params={"end_user": "acme"}, headers=MASTER)).json()
        assert logs and all(row["end_user"] == "acme" for row in logs)
        assert len([row for row in logs if row["status"] == "success"]) == codes.count(200)
        report = (
            await client.get(
                "/global/spend/report", params={"group_by": "end_user"}, headers=MASTER
            )
        ).json()
        assert {row["end_user"] for row in report} == {"acme", "someone-else"}


async def test_blocked_end_user_is_refused(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client)
        await post(client, "/customer/block", {"user_ids": ["mallory"]})
        reply = await client.post(
            "/v1/chat/completions", json=chat(3, user="mallory"), headers=bearer(key)
        )
        assert reply.status_code == 403
        assert reply.json()["error"]["code"] == "end_user_blocked"
        await post(client, "/customer/unblock", {"user_ids": ["mallory"]})
        reply = await client.post(
            "/v1/chat/completions",
            json=chat(3),
            headers={**bearer(key), "x-litellm-customer-id": "mallory"},
        )
        assert reply.status_code == 200


async def test_max_end_user_budget_holds_unnamed_end_users(tmp_path: Path) -> None:
    extra = "litellm_settings:\n  max_end_user_budget: 0.0003\n"
    async with gateway(tmp_path, extra) as client:
        key = await new_key(client)
        codes = [
            (
                await client.post(
                    "/v1/chat/completions", json=chat(100, user="walk-in"), headers=bearer(key)
                )
            ).status_code
            for _ in range(4)
        ]
        assert codes[0] == 200 and codes[-1] == 429
        anonymous = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert anonymous.status_code == 200  # no end user named: no end-user level
        await client.get("/spend/logs", headers=MASTER)  # flushes
        listed = (await client.get("/customer/list", headers=MASTER)).json()
        walk_in = [c for c in listed if c["user_id"] == "walk-in"]
        assert walk_in and 0 < walk_in[0]["spend"] <= 0.0003


async def test_end_user_and_organization_spend_survive_a_restart(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        await post(client, "/customer/new", {"user_id": "acme", "max_budget": 1.0})
        org = await post(client, "/organization/new", {"organization_id": "o", "max_budget": 1.0})
        team = await post(client, "/team/new", {"organization_id": org["organization_id"]})
        key = await new_key(client, team_id=team["team_id"])
        reply = await client.post(
            "/v1/chat/completions", json=chat(100, user="acme"), headers=bearer(key)
        )
        cost = float(reply.headers["x-tollway-response-cost"])
    async with gateway(tmp_path) as client:
        customer = (
            await client.get("/customer/info", params={"end_user_id": "acme"}, headers=MASTER)
        ).json()
        organization = (
            await client.get("/organization/info", params={"organization_id": "o"}, headers=MASTER)
        ).json()
    assert customer["spend"] == cost
    assert organization["spend"] == cost
