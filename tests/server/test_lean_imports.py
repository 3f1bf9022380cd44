"""A feature that is configured off costs no memory: its heavy packages are never imported.

A fresh interpreter builds and starts the gateway with a plain config (one model, a master
key, the SQLite store), serves a few requests (health, models, a new key), then lists which
optional packages got imported; then scrapes ``/metrics``, which loads ``prometheus_client``
(~2 MB) on its first call. ``cryptography`` alone is ~7 MB resident: it is imported only when a
secret is stored or opened, or the admin UI seals its first session cookie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each is needed only by a feature the config below leaves off.
OPTIONAL = (
    "cryptography",  # secrets at rest, UI sessions
    "redis",  # the shared ledger, the Redis cache
    "aiohttp",  # the upstream client behind HTTP proxies
    "opentelemetry",  # the OTLP sink
    "google.protobuf",
    "botocore",  # Bedrock
    "re2",  # guardrails' regexes
    "wordllama",  # the semantic cache
    "numpy",
    "jsonschema",
    "prometheus_client",  # /metrics: loaded on the first scrape
    "difflib",  # "did you mean" hints for a config with a typo
    "importlib.metadata",
    "zipfile",
)

_SCRIPT = """
import asyncio, json, sys
import httpx
from proxy.config import parse_config
from proxy.server.app import create_app
from proxy.server.settings import resolve

CONFIG = '''
model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: sk-upstream
general_settings:
  master_key: sk-master-lean
'''

async def main(tmp):
    config = parse_config(CONFIG, tmp + "/config.yaml", {})
    app = create_app(resolve({"db": tmp + "/tollway.db"}, {}, config), config)
    await app.state.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            headers = {"authorization": "Bearer sk-master-lean"}
            statuses = [
                (await client.get("/health/liveliness")).status_code,
                (await client.get("/v1/models", headers=headers)).status_code,
                (await client.post("/key/generate", headers=headers, json={})).status_code,
            ]
            optional = json.loads(sys.argv[2])
            imported = [m for m in optional if m in sys.modules]
            scrape = await client.get("/metrics")
            scraped = [scrape.status_code, "tollway_requests_total" in scrape.text]
            scraped.append("prometheus_client" in sys.modules)
    finally:
        await app.state.stop()
    print(json.dumps({"statuses": statuses, "imported": imported, "scraped": scraped}))

asyncio.run(main(sys.argv[1]))
"""


def test_a_plain_gateway_imports_no_optional_package(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("TOLLWAY_SALT_KEY", "LITELLM_SALT_KEY", "HTTPS_PROXY", "HTTP_PROXY"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), json.dumps(OPTIONAL)],
        capture_output=True,
        cwd=ROOT,
        env=env,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["statuses"] == [200, 200, 200]
    assert found["imported"] == []
    # The first scrape builds the registry: the series are there, prometheus_client is loaded.
    assert found["scraped"] == [200, True, True]
