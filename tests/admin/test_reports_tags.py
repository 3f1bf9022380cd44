"""``/global/spend/report`` by tag, with cache hits and guardrail blocks counted per group,
and ``/team/list`` paged on the server, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
litellm_settings:
  cache: true
  cache_params:
    type: local
guardrails:
  - guardrail_name: words
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
      blocked_words:
        - keyword: project-falcon
          action: BLOCK
"""


def chat(content: str) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": [{"role": "user", "content": content}]}


@dataclass
class Used:
    client: httpx.AsyncClient
    keys: dict[str, dict[str, Any]]
    manager: str


async def generate(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    made = await client.post("/key/generate", json=fields, headers=bearer())
    assert made.status_code == 200, made.text
    return dict(made.json())


@pytest.fixture
async def used(tmp_path: Path) -> AsyncIterator[Used]:
    """Key ``shop`` (tags checkout, web; in team-shop) calls twice, the second answered from
    the cache; key ``search`` (tags search, web) is blocked once by a guardrail and calls
    once; key ``plain`` (no tags) calls once."""
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(3)])
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        team = await client.post("/team/new", json={"team_id": "team-shop"}, headers=bearer())
        assert team.status_code == 200, team.text
        keys = {
            "shop": await generate(client, tags=["checkout", "web"], team_id="team-shop"),
            "search": await generate(client, tags=["search", "web"]),
            "plain": await generate(client),
        }
        manager = await generate(client, team_id="team-shop", key_type="management")
        calls = [
            ("shop", "hello", 200),
            ("shop", "hello", 200),  # the cache answers
            ("search", "tell me about project-falcon", 400),  # the guardrail blocks
            ("search", "hello search", 200),
            ("plain", "hello plain", 200),
        ]
        for name, content, status in calls:
            reply = await client.post(
                "/v1/chat/completions", json=chat(content), headers=bearer(keys[name]["key"])
            )
            assert reply.status_code == status, reply.text
        assert len(upstream.sent) == 3
        yield Used(client, keys, manager["key"])


async def report(client: httpx.AsyncClient, key: str | None = None, **params: str) -> Any:
    response = await client.get(
        "/global/spend/report", params=params, headers=bearer(key) if key else bearer()
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_report_by_tag_counts_each_tag_of_a_call_and_the_untagged_apart(
    used: Used,
) -> None:
    rows = await report(used.client, group_by="tag")
    by_tag = {r["tag"]: r for r in rows}
    assert set(by_tag) == {"checkout", "web", "search", None}
    checkout, web, search = by_tag["checkout"], by_tag["web"], by_tag["search"]
    assert (checkout["requests"], checkout["cache_hits"], checkout["guardrail_blocks"]) == (2, 1, 0)
    assert checkout["cache_savings"] > 0 and checkout["spend"] > 0
    assert (search["requests"], search["cache_hits"], search["guardrail_blocks"]) == (2, 0, 1)
    # "web" is on both keys: it sums the calls of both tag lists.
    assert (web["requests"], web["cache_hits"], web["guardrail_blocks"]) == (4, 1, 1)
    assert web["spend"] == pytest.approx(checkout["spend"] + search["spend"])
    assert web["cache_savings"] == pytest.approx(checkout["cache_savings"])
    assert by_tag[None]["requests"] == 1 and by_tag[None]["spend"] > 0
    assert all(r["total_spend"] == r["spend"] for r in rows)
    spends = [r["spend"] for r in rows]
    assert spends == sorted(spends, reverse=True)
    assert await report(used.client, group_by="tags") == rows  # an alias


async def test_every_grouping_counts_guardrail_blocks_and_cache_hits(used: Used) -> None:
    by_key = {r["api_key"]: r for r in await report(used.client, group_by="key")}
    search, shop = by_key[used.keys["search"]["token"]], by_key[used.keys["shop"]["token"]]
    assert search["guardrail_blocks"] == 1 and search["cache_hits"] == 0
    assert shop["guardrail_blocks"] == 0 and shop["cache_hits"] == 1
    assert shop["cache_savings"] > 0
    by_model = await report(used.client, group_by="model")
    assert sum(r["guardrail_blocks"] for r in by_model) == 1
    assert sum(r["cache_hits"] for r in by_model) == 1
    assert sum(r["requests"] for r in by_model) == 5


async def test_the_report_by_tag_per_day(used: Used) -> None:
    days = await report(used.client, group_by="tag", group_by_day="true")
    assert len(days) == 1
    tags = {g["tag"]: g for g in days[0]["tags"]}
    assert set(tags) == {"checkout", "web", "search", None}
    assert tags["checkout"]["requests"] == 2 and tags["web"]["requests"] == 4
    # One entry per model, though two tag lists ("checkout, web", "search, web") share "web".
    [model] = tags["web"]["metadata"]
    assert model["model"] == "gpt-x"
    assert model["spend"] == pytest.approx(tags["web"]["total_spend"])


async def test_a_date_range_without_calls_reports_no_tags(used: Used) -> None:
    assert (
        await report(used.client, group_by="tag", start_date="2001-01-01", end_date="2001-01-31")
        == []
    )


async def test_a_team_scoped_key_sees_only_its_teams_tags(used: Used) -> None:
    rows = await report(used.client, used.manager, group_by="tag")
    assert {r["tag"]: r["requests"] for r in rows} == {"checkout": 2, "web": 2}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        pytest.param({"group_by": "tag", "tag": "checkout"}, "tag", id="unknown-param"),
        pytest.param({"group_by": "label"}, "group_by", id="unknown-group"),
        pytest.param({"group_by": "tag", "group_by_day": "yes"}, "group_by_day", id="bad-day"),
    ],
)
async def test_the_report_refuses_what_it_does_not_know(
    used: Used, params: dict[str, str], param: str
) -> None:
    response = await used.client.get("/global/spend/report", params=params, headers=bearer())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_the_team_list_pages_on_the_server_and_keeps_its_list_shape_unpaged(
    tmp_path: Path,
) -> None:
    gateway = await InProcessGateway.build(tmp_path, CONFIG)
    async with gateway.running() as client:
        for n in range(5):
            made = await client.post("/team/new", json={"team_id": f"t{n}"}, headers=bearer())
            assert made.status_code == 200, made.text

        async def teams(**params: Any) -> Any:
            response = await client.get("/team/list", params=params, headers=bearer())
            assert response.status_code == 200, response.text
            return response.json()

        everything = await teams()
        assert [t["team_id"] for t in everything] == [f"t{n}" for n in range(5)]
        first = await teams(page=1, page_size=2)
        assert [t["team_id"] for t in first["teams"]] == ["t0", "t1"]
        assert (first["total"], first["page"], first["page_size"], first["total_pages"]) == (
            5,
            1,
            2,
            3,
        )
        last = await teams(page=3, page_size=2)
        assert [t["team_id"] for t in last["teams"]] == ["t4"]
        assert (await teams(page=4, page_size=2))["teams"] == []
        assert [t["team_id"] for t in (await teams(page=2, size=3))["teams"]] == ["t3", "t4"]
        assert (await teams(page=1))["page_size"] == 10
        for bad, param in (({"page_size": 0}, "page_size"), ({"planet": "x"}, "planet")):
            response = await client.get("/team/list", params=bad, headers=bearer())
            assert response.status_code == 400
            assert response.json()["error"]["param"] == param


async def test_the_openapi_document_lists_the_new_query_parameters(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, CONFIG)
    async with gateway.running() as client:
        spec = (await client.get("/openapi.json")).json()

    def names(path: str) -> set[str]:
        return {p["name"] for p in spec["paths"][path]["get"].get("parameters", [])}

    assert {"group_by", "group_by_day", "start_date", "end_date"} <= names("/global/spend/report")
    assert {"page", "page_size", "size", "user_id", "organization_id"} <= names("/team/list")
