"""Region-restricted end users (LiteLLM's ``allowed_model_region``): routed only to deployments
in their region, every fallback included, or refused in the contract's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.routing.region import deployment_region, region_of_name
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION
from tests.providers.scripted import Canned, ScriptedTransport, make_deployment

CONFIG = """\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-up
      api_base: http://eu.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      region_name: eu
  - model_name: gpt
    litellm_params:
      model: openai/gpt-up
      api_base: http://us.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      region_name: us
  - model_name: us-only
    litellm_params:
      model: openai/gpt-up
      api_base: http://us.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      region_name: us
  - model_name: eu-flaky
    litellm_params:
      model: openai/gpt-up
      api_base: http://eu-flaky.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      region_name: eu-west-1
router_settings:
  num_retries: 0
  fallbacks: [{"eu-flaky": ["us-only", "gpt"]}]
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""


def chat(model: str = "gpt", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def hosts(upstream: ScriptedTransport) -> list[str]:
    return [sent.url.split("/")[2] for sent in upstream.sent]


async def customer(client: Any, user_id: str, region: str | None) -> None:
    made = await client.post(
        "/customer/new",
        json={"user_id": user_id, "allowed_model_region": region},
        headers=bearer(),
    )
    assert made.status_code == 200, made.text


@pytest.mark.parametrize(
    ("name", "region"),
    [
        pytest.param("eu", "eu", id="eu"),
        pytest.param("US", "us", id="us-upper"),
        pytest.param("eu-west-1", "eu", id="aws-eu"),
        pytest.param("europe-west4", "eu", id="gcp-eu"),
        pytest.param("us-east-1", "us", id="aws-us"),
        pytest.param("ap-south-1", None, id="other"),
        pytest.param(None, None, id="none"),
    ],
)
def test_region_names_map_to_eu_or_us(name: str | None, region: str | None) -> None:
    assert region_of_name(name) == region


def test_a_deployment_without_region_name_takes_its_providers_region() -> None:
    assert deployment_region(make_deployment("bedrock/m", aws_region_name="eu-central-1")) == "eu"
    assert deployment_region(make_deployment("openai/m")) is None
    # region_name wins over the provider's own setting.
    bedrock = make_deployment("bedrock/m", region_name="us", aws_region_name="eu-central-1")
    assert deployment_region(bedrock) == "us"


async def test_an_eu_end_user_is_only_routed_to_eu_deployments(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(12)])
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        await customer(client, "eu-user", "eu")
        for _ in range(6):
            resp = await client.post(
                "/v1/chat/completions", json=chat(user="eu-user"), headers=bearer()
            )
            assert resp.status_code == 200, resp.text
        # Named by the LiteLLM header instead of the body's ``user``.
        for _ in range(4):
            resp = await client.post(
                "/v1/chat/completions",
                json=chat(),
                headers={**bearer(), "x-litellm-end-user-id": "eu-user"},
            )
            assert resp.status_code == 200, resp.text
        assert hosts(upstream) == ["eu.test"] * 10


async def test_a_group_without_a_deployment_in_the_region_is_refused(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        await customer(client, "eu-user", "eu")
        resp = await client.post(
            "/v1/chat/completions", json=chat("us-only", user="eu-user"), headers=bearer()
        )
        assert resp.status_code == 403
        error = resp.json()["error"]
        assert error["type"] == "permission_error"
        assert error["code"] == "model_region_not_allowed"
        assert "'eu'" in error["message"] and "us-only" in error["message"]
        assert upstream.sent == []
        # Another end user (no region) and no end user at all are served as before.
        resp = await client.post(
            "/v1/chat/completions", json=chat("us-only", user="anyone"), headers=bearer()
        )
        assert resp.status_code == 200, resp.text
        assert hosts(upstream) == ["us.test"]


async def test_fallbacks_skip_groups_with_nothing_in_the_region(tmp_path: Path) -> None:
    upstream = ScriptedTransport(
        Canned.json({"error": {"message": "down"}}, status=500), Canned.json(COMPLETION)
    )
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        await customer(client, "eu-user", "eu")
        resp = await client.post(
            "/v1/chat/completions", json=chat("eu-flaky", user="eu-user"), headers=bearer()
        )
        assert resp.status_code == 200, resp.text
        # us-only (first fallback) has nothing in the EU: gpt's EU deployment served.
        assert hosts(upstream) == ["eu-flaky.test", "eu.test"]


async def test_a_region_removed_or_its_customer_deleted_lifts_the_filter(tmp_path: Path) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION) for _ in range(2)])
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    hierarchy = gateway.state.hierarchy
    async with gateway.running() as client:
        # No end user has a region: the routing filter is one empty-dict test.
        assert hierarchy.regions == {}
        await customer(client, "eu-user", "eu")
        assert hierarchy.regions == {"eu-user": "eu"}
        updated = await client.post(
            "/customer/update",
            json={"user_id": "eu-user", "allowed_model_region": None},
            headers=bearer(),
        )
        assert updated.status_code == 200, updated.text
        assert hierarchy.regions == {}
        resp = await client.post(
            "/v1/chat/completions", json=chat("us-only", user="eu-user"), headers=bearer()
        )
        assert resp.status_code == 200, resp.text
        await customer(client, "us-user", "us")
        deleted = await client.post(
            "/customer/delete", json={"user_ids": ["us-user"]}, headers=bearer()
        )
        assert deleted.status_code == 200, deleted.text
        assert hierarchy.regions == {}
