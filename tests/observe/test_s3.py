"""The S3 sink against ``moto_server`` (an S3-compatible API on 127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.session import get_session  # type: ignore[import-untyped]

from proxy.config import ConfigError, parse_config
from proxy.observe.bus import EventBus
from proxy.observe.event import CallEvent
from proxy.observe.sinks.s3 import S3Sink, build
from proxy.upstream.aiohttp_transport import AiohttpTransport
from tests.inprocess import InProcessGateway, bearer

ACCESS_KEY = "AKIATESTTOLLWAY00001"
SECRET_KEY = "tollway-test-secret-key-0123456789abcdef"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Its request log goes to a file, so a full pipe can never stall the server.
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        match = None
        while match is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log_path.read_text()}")
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            if match is None:
                time.sleep(0.05)
        assert match is not None, "moto_server did not say where it listens"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(endpoint: str) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    name = f"tollway-logs-{uuid.uuid4().hex[:8]}"
    _client(moto_endpoint).create_bucket(Bucket=name)
    return name


def _objects(endpoint: str, bucket: str) -> dict[str, list[dict[str, Any]]]:
    """Every object in ``bucket``: key -> its NDJSON lines (blocking: run off the loop)."""
    client = _client(endpoint)
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    out = {}
    for item in listing:
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        out[item["Key"]] = [orjson.loads(line) for line in body.splitlines() if line]
    return out


def _event(call_id: str) -> CallEvent:
    now = time.time()
    return CallEvent(
        call_id=call_id,
        request_id=f"req-{call_id}",
        start_time=now - 1,
        end_time=now,
        route="openai",
        kind="chat/completions",
        model_group="gpt-test",
        prompt_tokens=3,
        completion_tokens=4,
        cost=0.5,
    )


def _sink(endpoint: str, bucket: str, secret: str = SECRET_KEY, **kw: Any) -> S3Sink:
    return S3Sink(
        bucket=bucket,
        region=REGION,
        credentials=Credentials(ACCESS_KEY, secret),
        endpoint_url=endpoint,
        **kw,
    )


async def test_a_flush_is_one_ndjson_object_under_the_path_and_date(
    moto_endpoint: str, bucket: str
) -> None:
    sink = _sink(moto_endpoint, bucket, path="tollway/logs", flush_interval_s=0.2)
    bus = EventBus([sink])
    bus.start()
    for i in range(5):
        bus.publish(_event(f"c{i}"))
    await bus.stop()
    objects = await asyncio.to_thread(_objects, moto_endpoint, bucket)
    assert len(objects) == 1
    ((key, lines),) = objects.items()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert re.fullmatch(rf"tollway/logs/{day}/\d\d-\d\d-\d\d-\d{{6}}-[0-9a-f]{{32}}\.json", key)
    assert [line["id"] for line in lines] == [f"c{i}" for i in range(5)]
    assert all(line["total_tokens"] == 7 and line["response_cost"] == 0.5 for line in lines)
    assert bus.stats["s3"].delivered == 5


async def test_each_batch_is_its_own_object(moto_endpoint: str, bucket: str) -> None:
    sink = _sink(moto_endpoint, bucket, max_batch=2, flush_interval_s=0.2)
    bus = EventBus([sink])
    bus.start()
    for i in range(5):
        bus.publish(_event(f"c{i}"))
    await bus.stop()
    objects = await asyncio.to_thread(_objects, moto_endpoint, bucket)
    assert sorted(len(lines) for lines in objects.values()) == [1, 2, 2]
    assert sorted(line["id"] for lines in objects.values() for line in lines) == [
        f"c{i}" for i in range(5)
    ]


async def test_a_missing_bucket_is_retried_then_dropped_without_the_secret_in_the_error(
    moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _sink(moto_endpoint, "no-such-bucket-tollway", flush_interval_s=0.1)
    bus = EventBus([sink], retries=1)
    bus.start()
    bus.publish(_event("lost"))
    await bus.stop()
    assert bus.stats["s3"].dropped == 1
    assert "NoSuchBucket" in caplog.text
    assert SECRET_KEY not in caplog.text


async def test_the_request_carries_a_valid_sigv4_signature() -> None:
    sink = _sink("http://127.0.0.1:9", "b")
    url = "http://127.0.0.1:9/b/logs/2025-01-01/x.json"
    body = b'{"id":"a"}\n'
    headers = sink._sign(url, body)
    signed = re.search(r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", headers["Authorization"])
    assert signed is not None
    assert f"Credential={ACCESS_KEY}/" in headers["Authorization"]
    assert SECRET_KEY not in str(headers)
    # Recompute the signature the way S3 does, from what is sent.
    names = signed.group(1).split(";")
    lower = {k.lower(): v for k, v in headers.items()}
    check = AWSRequest(
        method="PUT", url=url, data=body, headers={n: lower[n] for n in names if n in lower}
    )
    check.context["timestamp"] = lower["x-amz-date"]
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
    expected = auth.signature(auth.string_to_sign(check, auth.canonical_request(check)), check)
    assert signed.group(2) == expected


async def test_the_s3_callback_uploads_what_the_gateway_serves(
    tmp_path: Path, moto_endpoint: str, bucket: str
) -> None:
    config = f"""\
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: mock/mock-gpt
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
litellm_settings:
  success_callback: ["s3"]
  s3_callback_params:
    s3_bucket_name: {bucket}
    s3_region_name: {REGION}
    s3_aws_access_key_id: os.environ/TEST_S3_ACCESS_KEY
    s3_aws_secret_access_key: os.environ/TEST_S3_SECRET
    s3_endpoint_url: {moto_endpoint}
    s3_path: gateway
    s3_flush_interval: 0.2
"""
    environ = {"TEST_S3_ACCESS_KEY": ACCESS_KEY, "TEST_S3_SECRET": SECRET_KEY}
    gateway = await InProcessGateway.build(tmp_path, config, transport=None, environ=environ)
    async with gateway.running() as client:
        for _ in range(3):
            response = await client.post(
                "/v1/chat/completions",
                headers=bearer(),
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 200
    objects = await asyncio.to_thread(_objects, moto_endpoint, bucket)
    lines = [line for found in objects.values() for line in found]
    assert len(lines) == 3
    assert all(key.startswith("gateway/") for key in objects)
    assert {line["model_group"] for line in lines} == {"mock-gpt"}
    assert all(line["status"] == "success" for line in lines)


def test_the_bucket_name_is_required() -> None:
    config = parse_config("litellm_settings:\n  s3_callback_params: {}\n", "test", {})
    with pytest.raises(ConfigError, match="s3_bucket_name"):
        build({}, AiohttpTransport(), {"config": config})


def test_keys_fall_back_to_the_aws_environment_variables() -> None:
    config = parse_config(
        "litellm_settings:\n  s3_callback_params:\n    s3_bucket_name: logs\n", "test", {}
    )
    environ = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION_NAME": "eu-west-1",
    }
    sink = build(environ, AiohttpTransport(), {"config": config})
    headers = sink._sign("https://logs.s3.eu-west-1.amazonaws.com/k.json", b"{}\n")
    assert f"Credential={ACCESS_KEY}/" in headers["Authorization"]
    assert "/eu-west-1/s3/aws4_request" in headers["Authorization"]
