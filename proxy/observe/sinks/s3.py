"""S3 (and S3-compatible stores): one NDJSON object per flush, one line per call.

Configured by ``litellm_settings.s3_callback_params`` with LiteLLM's names:
``s3_bucket_name`` (required), ``s3_region_name``, ``s3_aws_access_key_id``,
``s3_aws_secret_access_key``, ``s3_aws_session_token``, ``s3_endpoint_url`` (MinIO, R2,
moto ...; path-style unless ``s3_use_virtual_hosted_style``), ``s3_path`` (a key prefix),
``s3_flush_interval`` and ``s3_batch_size``; ``os.environ/`` values are resolved by the
config loader, and missing keys fall back to ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
/ ``AWS_SESSION_TOKEN`` / ``AWS_REGION_NAME`` ... like LiteLLM's. Objects are named
``{s3_path}/{YYYY-MM-DD}/{HH-MM-SS-ffffff}-{uuid}.json``; each line is
``webhook.standard_logging_payload`` of one call.

Requests are signed by botocore's ``S3SigV4Auth`` (CPU only, on the loop). The gateway's
``Transport`` only POSTs and PutObject is a PUT, so this sink owns one small aiohttp session
(opened on first use, closed in ``close``). The secret key never leaves the process, and an
error answer is reported by its S3 error code only (its text can echo the access key id).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from ...config import ConfigError
from ...upstream.transport import Transport
from ..event import CallEvent
from .webhook import standard_logging_payload

DEFAULT_REGION = "us-east-1"
# LiteLLM's defaults (DEFAULT_S3_FLUSH_INTERVAL_SECONDS, DEFAULT_S3_BATCH_SIZE).
DEFAULT_FLUSH_INTERVAL_S = 10.0
DEFAULT_BATCH_SIZE = 512
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=20)
_ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class S3Error(Exception):
    """The store refused an upload (the bus retries it)."""


class S3Sink:
    """Uploads each batch as one NDJSON object."""

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        credentials: Credentials | None,
        endpoint_url: str | None = None,
        path: str = "",
        virtual_hosted: bool = False,
        max_batch: int = DEFAULT_BATCH_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        timeout: aiohttp.ClientTimeout = TIMEOUT,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.path = path.strip("/")
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self._base = _bucket_url(bucket, region, endpoint_url, virtual_hosted)
        self._auth = S3SigV4Auth(credentials, "s3", region) if credentials else None
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.uploaded: list[str] = []  # keys written, newest last (kept short)

    def object_key(self, now: float | None = None) -> str:
        """``{s3_path}/{date}/{time}-{uuid}.json`` for an upload made at ``now``."""
        moment = time.time() if now is None else now
        day = time.strftime("%Y-%m-%d", time.gmtime(moment))
        clock = time.strftime("%H-%M-%S", time.gmtime(moment))
        micros = int((moment % 1) * 1_000_000)
        name = f"{day}/{clock}-{micros:06d}-{uuid.uuid4().hex}.json"
        return f"{self.path}/{name}" if self.path else name

    async def send(self, batch: Sequence[CallEvent]) -> None:
        body = b"".join(orjson.dumps(standard_logging_payload(e)) + b"\n" for e in batch)
        key = self.object_key()
        url = f"{self._base}/{quote(key, safe='/')}"
        headers = self._sign(url, body)
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with session.put(url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status >= 300:
                match = _ERROR_CODE.search(answer)
                code = match.group(1).decode() if match else "no error code"
                raise S3Error(f"s3 PUT of {key} answered {response.status}: {code}")
        self.uploaded = [*self.uploaded[-99:], key]

    def _sign(self, url: str, body: bytes) -> dict[str, str]:
        headers = {
            "content-type": "application/x-ndjson",
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        }
        if self._auth is None:
            return headers
        request = AWSRequest(method="PUT", url=url, data=body, headers=headers)
        request.context["payload_signing_enabled"] = True
        self._auth.add_auth(request)
        return {name: value for name, value in request.headers.items()}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def build(environ: Mapping[str, str], transport: Transport, settings: Mapping[str, Any]) -> S3Sink:
    """The ``s3`` callback, from ``litellm_settings.s3_callback_params``."""
    config = settings.get("config")
    litellm = getattr(config, "litellm_settings", None)
    params: Mapping[str, Any] = getattr(litellm, "s3_callback_params", None) or {}
    bucket = params.get("s3_bucket_name")
    if not bucket:
        raise ConfigError(
            "the s3 callback needs litellm_settings.s3_callback_params.s3_bucket_name"
        )
    region = (
        params.get("s3_region_name")
        or environ.get("AWS_REGION_NAME")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    access_key = params.get("s3_aws_access_key_id")
    secret_key = params.get("s3_aws_secret_access_key")
    token = params.get("s3_aws_session_token")
    if not (access_key and secret_key):
        access_key = environ.get("AWS_ACCESS_KEY_ID")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
        token = environ.get("AWS_SESSION_TOKEN")
    credentials = (
        Credentials(str(access_key), str(secret_key), str(token) if token else None)
        if access_key and secret_key
        else None
    )
    return S3Sink(
        bucket=str(bucket),
        region=str(region),
        credentials=credentials,
        endpoint_url=params.get("s3_endpoint_url") or None,
        path=str(params.get("s3_path") or ""),
        virtual_hosted=_truthy(params.get("s3_use_virtual_hosted_style")),
        max_batch=int(params.get("s3_batch_size") or DEFAULT_BATCH_SIZE),
        flush_interval_s=float(params.get("s3_flush_interval") or DEFAULT_FLUSH_INTERVAL_S),
    )


def _bucket_url(bucket: str, region: str, endpoint: str | None, virtual_hosted: bool) -> str:
    if endpoint:
        endpoint = endpoint.rstrip("/")
        if virtual_hosted:
            scheme, _, host = endpoint.partition("://")
            return f"{scheme}://{bucket}.{host}"
        return f"{endpoint}/{bucket}"
    return f"https://{bucket}.s3.{region}.amazonaws.com"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
