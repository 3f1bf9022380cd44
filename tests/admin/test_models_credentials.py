"""Models and credentials managed at run time (``store_model_in_db``): they join routing at
once, their secrets are sealed at rest, a changed salt key is reported (never a crash), and
an api_base pointing at link-local / metadata addresses is refused."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import MASTER_KEY
from tests.inprocess import InProcessGateway, bearer
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: from-config
    litellm_params:
      model: mock/mock-gpt
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
  store_model_in_db: true
"""
SECRET = "sk-stored-upstream-7c1d0e9f"
BASE = "http://127.0.0.1:9/v1"  # a literal address: the scripted transport never connects
COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def scripted(n: int = 4) -> ScriptedTransport:
    return ScriptedTransport(*[Canned.json(COMPLETION)] * n)


def new_model(name: str = "db-model", **params: Any) -> dict[str, Any]:
    litellm_params = {"model": "openai/up-model", "api_base": BASE, "api_key": SECRET, **params}
    return {"model_name": name, "litellm_params": litellm_params}


def chat(model: str = "db-model") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(autouse=True)
def salt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_SALT_KEY", "salt-one")
    for name in ("TOLLWAY_UPSTREAM_ALLOW", "TOLLWAY_UPSTREAM_DENY", "STORE_MODEL_IN_DB"):
        monkeypatch.delenv(name, raising=False)


async def test_a_model_added_at_run_time_is_served_at_once_without_its_key_shown(
    tmp_path: Path,
) -> None:
    upstream = scripted()
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        before = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        created = await client.post("/model/new", json=new_model(), headers=bearer())
        after = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        info = await client.get("/model/info", headers=bearer())
        models = await client.get("/v1/models", headers=bearer())
    assert before.status_code == 404
    assert created.status_code == 200, created.text
    assert after.status_code == 200, after.text
    assert upstream.last.url == f"{BASE}/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
    stored = next(m for m in info.json()["data"] if m["model_name"] == "db-model")
    assert stored["model_info"]["db_model"] is True
    assert "api_key" not in stored["litellm_params"]
    assert SECRET not in info.text and SECRET not in created.text
    assert "db-model" in {m["id"] for m in models.json()["data"]}


async def test_secrets_are_encrypted_at_rest(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    async with gateway.running() as client:
        created = await client.post("/model/new", json=new_model(), headers=bearer())
        assert created.status_code == 200
        credential = await client.post(
            "/credentials",
            json={"credential_name": "c1", "credential_values": {"api_key": SECRET + "-cred"}},
            headers=bearer(),
        )
        assert credential.status_code == 200
    raw = await _read_bytes(gateway.db_path)
    assert SECRET.encode() not in raw
    assert b"tollway:v1:" in raw
    rows = await _rows(gateway.db_path, "SELECT litellm_params FROM proxy_models")
    assert '"api_base":"http://127.0.0.1:9/v1"' in rows[0][0]  # only secrets are sealed


async def test_update_and_delete_change_routing_and_config_models_are_refused(
    tmp_path: Path,
) -> None:
    upstream = scripted()
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        created = (await client.post("/model/new", json=new_model(), headers=bearer())).json()
        model_id = created["model_id"]
        updated = await client.post(
            "/model/update",
            json={
                "model_info": {"id": model_id},
                "litellm_params": {"api_base": "http://127.0.0.2/v1"},
            },
            headers=bearer(),
        )
        assert updated.status_code == 200, updated.text
        served = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        assert served.status_code == 200
        # The key was kept: only api_base changed.
        assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
        assert upstream.last.url == "http://127.0.0.2/v1/chat/completions"
        repriced = await client.post(
            "/model/update",
            json={"model_id": model_id, "model_info": {"input_cost_per_token": 0.5e-6}},
            headers=bearer(),
        )
        assert repriced.json()["model_info"]["input_cost_per_token"] == 0.5e-6
        assert repriced.json()["model_info"]["price_source"] == "model_info"
        config_id = next(
            m["model_info"]["id"]
            for m in (await client.get("/model/info", headers=bearer())).json()["data"]
            if m["model_name"] == "from-config"
        )
        refused = await client.post("/model/delete", json={"id": config_id}, headers=bearer())
        deleted = await client.post("/model/delete", json={"id": model_id}, headers=bearer())
        gone = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert refused.status_code == 400
    assert "config file" in refused.json()["error"]["message"]
    assert deleted.status_code == 200
    assert gone.status_code == 404


async def test_stored_models_are_served_after_a_restart(tmp_path: Path) -> None:
    first = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    async with first.running() as client:
        assert (
            await client.post("/model/new", json=new_model(), headers=bearer())
        ).status_code == 200
    upstream = scripted()
    second = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with second.running() as client:
        served = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert served.status_code == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"


async def test_a_changed_salt_key_is_reported_once_and_rotation_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    async with first.running() as client:
        created = await client.post("/model/new", json=new_model(), headers=bearer())
        model_id = created.json()["model_id"]
    monkeypatch.setenv("TOLLWAY_SALT_KEY", "salt-two")
    second = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    with caplog.at_level(logging.WARNING):
        async with second.running() as client:
            health = await client.get("/health/readiness")
            unserved = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert health.status_code == 200
    assert unserved.status_code == 404
    reports = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert len(reports) == 1 and model_id in reports[0]
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    # `tollway rotate-salt-key`: the current key in TOLLWAY_SALT_KEY, the new one beside it.
    result = await _rotate(gateway_db=first.db_path, old="salt-one", new="salt-two")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 models" in result.stdout
    upstream = scripted()
    third = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with third.running() as client:
        served = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert served.status_code == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("api_base", "environ"),
    [
        pytest.param("http://169.254.169.254/latest", {}, id="aws-metadata"),
        pytest.param("http://[fd00:ec2::254]/", {}, id="aws-metadata-ipv6"),
        pytest.param("http://169.254.10.1:8080/v1", {}, id="link-local"),
        pytest.param("http://metadata.google.internal/v1", {}, id="gcp-metadata-name"),
        pytest.param(
            "http://localhost:8000/v1",
            {"TOLLWAY_UPSTREAM_DENY": "127.0.0.0/8,::1"},
            id="name-resolving-into-a-denied-network",
        ),
        pytest.param(
            "http://127.0.0.1:8000/v1",
            {"TOLLWAY_UPSTREAM_ALLOW": "10.0.0.0/8,*.example.com"},
            id="outside-the-allowlist",
        ),
        pytest.param("file:///etc/passwd", {}, id="not-http"),
    ],
)
async def test_an_api_base_outside_the_egress_policy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_base: str, environ: dict[str, str]
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    async with gateway.running() as client:
        model = await client.post("/model/new", json=new_model(api_base=api_base), headers=bearer())
        credential = await client.post(
            "/credentials",
            json={"credential_name": "c", "credential_values": {"api_base": api_base}},
            headers=bearer(),
        )
    for response in (model, credential):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "api_base_denied"


async def test_the_upstream_client_follows_no_redirect(tmp_path: Path) -> None:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(COMPLETION)

    target_app = web.Application()
    target_app.router.add_post("/v1/chat/completions", target)
    async with TestServer(target_app, host="127.0.0.1") as target_server:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(str(target_server.make_url("/v1/chat/completions")))

        redirect_app = web.Application()
        redirect_app.router.add_post("/v1/chat/completions", redirect)
        async with TestServer(redirect_app, host="127.0.0.1") as redirect_server:
            base = str(redirect_server.make_url("/v1"))
            gateway = await InProcessGateway.build(tmp_path, CONFIG)
            async with gateway.running() as client:
                created = await client.post(
                    "/model/new", json=new_model(api_base=base), headers=bearer()
                )
                assert created.status_code == 200, created.text
                response = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert hits == [], response.text
    assert response.status_code != 200, response.text


async def test_credentials_feed_models_never_show_values_and_cannot_be_deleted_in_use(
    tmp_path: Path,
) -> None:
    upstream = scripted()
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        made = await client.post(
            "/credentials",
            json={
                "credential_name": "team-openai",
                "credential_values": {"api_key": SECRET, "api_base": BASE},
                "credential_info": {"owner": "ml"},
            },
            headers=bearer(),
        )
        assert made.status_code == 200, made.text
        body = {
            "model_name": "via-credential",
            "litellm_params": {"model": "openai/x", "litellm_credential_name": "team-openai"},
        }
        assert (await client.post("/model/new", json=body, headers=bearer())).status_code == 200
        served = await client.post(
            "/v1/chat/completions", json=chat("via-credential"), headers=bearer()
        )
        listed = await client.get("/credentials", headers=bearer())
        one = await client.get("/credentials/by_name/team-openai", headers=bearer())
        in_use = await client.delete("/credentials/team-openai", headers=bearer())
    assert served.status_code == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
    assert upstream.last.url == f"{BASE}/chat/completions"
    assert SECRET not in listed.text and SECRET not in one.text
    assert listed.json()["credentials"][0]["credential_info"] == {"owner": "ml"}
    assert in_use.status_code == 400
    assert "via-credential" in in_use.text or "is used by" in in_use.text


async def test_writes_need_the_master_key_and_store_model_in_db(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=scripted())
    async with gateway.running() as client:
        key = (await client.post("/key/generate", json={}, headers=bearer())).json()["key"]
        as_key = await client.post("/model/new", json=new_model(), headers=bearer(key))
    assert as_key.status_code in (401, 403)
    await asyncio.to_thread((tmp_path / "off").mkdir)
    off = await InProcessGateway.build(
        tmp_path / "off", CONFIG.replace("  store_model_in_db: true\n", ""), transport=scripted()
    )
    async with off.running() as client:
        refused = await client.post("/model/new", json=new_model(), headers=bearer())
        unknown = await client.post("/credentials", json={"nope": 1}, headers=bearer())
    assert refused.status_code == 400
    assert "store_model_in_db" in refused.json()["error"]["message"]
    assert unknown.status_code == 400


async def _read_bytes(path: Path) -> bytes:
    def read() -> bytes:
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    return await asyncio.to_thread(read)


async def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    def query() -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return list(db.execute(sql))

    return await asyncio.to_thread(query)


async def _rotate(*, gateway_db: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env.update({"TOLLWAY_SALT_KEY": old, "TOLLWAY_NEW_SALT_KEY": new, "TEST": MASTER_KEY})
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "proxy", "rotate-salt-key", "--db", str(gateway_db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


async def test_a_client_supplied_api_base_is_refused_and_never_used(tmp_path: Path) -> None:
    upstream = scripted()
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        assert (
            await client.post("/model/new", json=new_model(), headers=bearer())
        ).status_code == 200
        body = {
            **chat(),
            "api_base": "http://169.254.169.254/",
            "base_url": "http://169.254.169.254/",
        }
        response = await client.post("/v1/chat/completions", json=body, headers=bearer())
        served = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "client_side_credentials"
    assert "169.254" not in response.text
    assert served.status_code == 200
    assert len(upstream.sent) == 1  # only the clean call went upstream
    assert upstream.last.url == f"{BASE}/chat/completions"
