"""Every inference route with and without ``/v1``, and Azure OpenAI's own paths
(``/openai/deployments/{deployment}/...?api-version=``, the deployment being the model
group), driven by the OpenAI SDK's Azure client where it applies."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, free_port, gateway_config
from tests.endpoints.conftest import new_key
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway, bearer

MESSAGES = [{"role": "user", "content": "Say hello"}]
BODIES: dict[str, dict[str, Any]] = {
    "/chat/completions": {"model": "gpt-test", "messages": MESSAGES},
    "/completions": {"model": "gpt-test", "prompt": "Say hello"},
    "/embeddings": {"model": "embed-test", "input": "hello"},
    "/messages": {"model": "gpt-test", "max_tokens": 16, "messages": MESSAGES},
    "/responses": {"model": "gpt-test", "input": "Say hello"},
    "/messages/count_tokens": {"model": "gpt-test", "messages": MESSAGES},
}


@pytest.fixture
def config_text(fake_openai: FakeOpenAI) -> str:
    """The shared ``gateway`` fixture serves the chat fake's config here."""
    return gateway_config(fake_openai, free_port())


@pytest.fixture
def client(gateway: tuple[InProcessGateway, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]


@pytest.mark.parametrize("prefix", ["/v1", ""])
@pytest.mark.parametrize("path", list(BODIES))
async def test_every_inference_route_is_served_with_and_without_v1(
    client: httpx.AsyncClient, path: str, prefix: str
) -> None:
    resp = await client.post(prefix + path, json=BODIES[path], headers=bearer(MASTER_KEY))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "path", ["/v1/models", "/models", "/v1/models/gpt-test", "/models/gpt-test"]
)
async def test_the_model_routes_are_served_with_and_without_v1(
    client: httpx.AsyncClient, path: str
) -> None:
    resp = await client.get(path, headers=bearer(MASTER_KEY))
    assert resp.status_code == 200, resp.text


async def test_azure_clients_call_the_deployment_named_in_the_path(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    key = await new_key(client)
    azure = openai.AsyncAzureOpenAI(
        azure_endpoint="http://tollway.test",
        api_key=key,
        api_version="2024-10-21",
        http_client=client,
        max_retries=0,
    )
    reply = await azure.chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    assert fake_openai.last_request()["json"]["model"] == "fake-ok"
    embedded = await azure.embeddings.create(model="embed-test", input="hello")
    assert embedded.data
    completion = await azure.completions.create(model="gpt-test", prompt="Say hello")
    assert completion.choices


async def test_an_azure_path_takes_the_model_from_the_path_not_the_body(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    resp = await client.post(
        "/openai/deployments/gpt-test/chat/completions?api-version=2024-10-21",
        json={"messages": MESSAGES},
        headers={"api-key": MASTER_KEY},
    )
    assert resp.status_code == 200, resp.text
    unknown = await client.post(
        "/openai/deployments/nope/chat/completions?api-version=2024-10-21",
        json={"model": "gpt-test", "messages": MESSAGES},
        headers=bearer(MASTER_KEY),
    )
    assert unknown.status_code == 404
    bad_key = await client.post(
        "/openai/deployments/gpt-test/chat/completions",
        json={"messages": MESSAGES},
        headers={"api-key": "sk-wrong"},
    )
    assert bad_key.status_code == 401
