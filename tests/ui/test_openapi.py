"""``/openapi.json`` describes every route the app serves, with the request schemas of the
msgspec structs the handlers decode; the static files ship in the wheel."""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.routing import Route

from proxy.admin.keys import GenerateKey, UpdateKey
from proxy.admin.teams import NewTeam
from proxy.model import ChatRequest
from tests.admin import AdminGateway, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminGateway]:
    with running_gateway(fake_openai, tmp_path_factory.mktemp("ui-openapi")) as proc:
        yield proc


@pytest.fixture(scope="module")
def spec(gateway: AdminGateway) -> dict[str, Any]:
    response = gateway.client.get("/openapi.json")  # no key: the docs are public
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def test_every_served_route_is_in_the_document(gateway: AdminGateway, spec: dict[str, Any]) -> None:
    app = gateway.client.app  # type: ignore[attr-defined]
    missing = []
    for route in app.web.router.routes:
        if not isinstance(route, Route) or route.path.startswith("/ui/static"):
            continue
        path = route.path.replace(":path}", "}")
        for method in (route.methods or {"GET"}) - {"HEAD"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, missing
    assert spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]


@pytest.mark.parametrize(
    ("path", "struct"),
    [
        pytest.param("/key/generate", GenerateKey, id="key-generate"),
        pytest.param("/key/update", UpdateKey, id="key-update"),
        pytest.param("/team/new", NewTeam, id="team-new"),
        pytest.param("/v1/chat/completions", ChatRequest, id="chat"),
    ],
)
def test_request_schemas_are_the_decoding_structs(
    spec: dict[str, Any], path: str, struct: type
) -> None:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    name = struct.__name__
    assert body["schema"] == {"$ref": f"#/components/schemas/{name}"}
    (_,), components = msgspec.json.schema_components(
        [struct], ref_template="#/components/schemas/{name}"
    )
    assert spec["components"]["schemas"][name] == components[name]
    # The document rejects what the server rejects: unknown fields.
    if struct.__struct_config__.forbid_unknown_fields:
        assert spec["components"]["schemas"][name].get("additionalProperties") is False


def test_key_generate_has_an_example_the_server_accepts(
    gateway: AdminGateway, spec: dict[str, Any]
) -> None:
    operation = spec["paths"]["/key/generate"]["post"]
    example = dict(operation["requestBody"]["content"]["application/json"]["example"])
    gateway.client.post("/team/new", json={"team_id": example["team_id"]}, headers=_master())
    response = gateway.client.post("/key/generate", json=example, headers=_master())
    assert response.status_code == 200, response.text
    assert {"401", "403"} <= set(operation["responses"])


def test_query_parameters_come_from_the_handlers(spec: dict[str, Any]) -> None:
    names = {p["name"] for p in spec["paths"]["/spend/logs"]["get"]["parameters"]}
    assert {"api_key", "team_id", "user_id", "start_date", "end_date", "page"} <= names
    health = spec["paths"]["/health/liveliness"]["get"]
    assert health["security"] == []


def test_docs_page_and_viewer_are_served_from_the_package(gateway: AdminGateway) -> None:
    page = gateway.client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    bundle = gateway.client.get("/ui/static/vendor/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    assert gateway.client.get("/ui/static/../settings.py").status_code == 404


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["proxy"]
    static = ROOT / "proxy" / "ui" / "static"
    files = [p.relative_to(ROOT / "proxy").as_posix() for p in static.rglob("*") if p.is_file()]
    assert any(name.endswith("chart.umd.min.js") for name in files)
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not unshipped, unshipped


def _master() -> dict[str, str]:
    from tests.conftest import MASTER_KEY

    return {"authorization": f"Bearer {MASTER_KEY}"}
