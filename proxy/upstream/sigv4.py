"""Where a ``bedrock/`` deployment's calls go and how they are authenticated.

Requests are signed by botocore's ``SigV4Auth`` (CPU only, so it runs on the loop);
credentials come from ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token`` / ``aws_region_name`` in ``litellm_params`` or the ``AWS_*``
environment variables; with no key pair, a Bedrock API key (``api_key`` or
``AWS_BEARER_TOKEN_BEDROCK``) goes in ``Authorization: Bearer``. The secret key itself
never leaves the process: only the signature made with it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .deployment import Deployment

if TYPE_CHECKING:
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

# botocore (about 8 MB resident) is imported by the first deployment that signs with a key
# pair, not by every gateway.

SERVICE = "bedrock"
DEFAULT_REGION = "us-west-2"  # LiteLLM's default, so its configs behave the same
_EVENTSTREAM = "application/vnd.amazon.eventstream"


class Signer:
    """Where one deployment's calls go and how they are authenticated."""

    __slots__ = ("_auth", "_request", "bearer", "endpoint", "region", "secrets")

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Credentials | None,
        bearer: str | None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.bearer = bearer
        self._auth: Any = None
        self._request: Any = None
        if credentials:
            from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
            from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

            self._auth = SigV4Auth(credentials, SERVICE, region)
            self._request = AWSRequest
        secrets = [bearer]
        if credentials is not None:
            secrets += [credentials.secret_key, credentials.token, credentials.access_key]
        self.secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def headers(self, url: str, body: bytes, stream: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": _EVENTSTREAM if stream else "application/json",
        }
        if self._auth is None:
            if self.bearer:
                headers["authorization"] = f"Bearer {self.bearer}"
        else:
            signed = self._request(method="POST", url=url, data=body, headers=headers)
            self._auth.add_auth(signed)
            headers = {name.lower(): value for name, value in signed.headers.items()}
        # Added after signing (so not signed): the relay reads the bytes uncompressed.
        headers["accept-encoding"] = "identity"
        return headers

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


def make_signer(deployment: Deployment, environ: Mapping[str, str]) -> Signer:
    params = deployment.params
    region = (
        params.aws_region_name
        or params.region_name
        or environ.get("AWS_REGION_NAME")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    endpoint = deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
    access_key, secret_key = params.aws_access_key_id, params.aws_secret_access_key
    token = params.aws_session_token
    if not (access_key and secret_key):
        access_key = environ.get("AWS_ACCESS_KEY_ID")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
        token = environ.get("AWS_SESSION_TOKEN")
    credentials = None
    if access_key and secret_key:
        from botocore.credentials import Credentials

        credentials = Credentials(access_key, secret_key, token or None)
    bearer = deployment.api_key or environ.get("AWS_BEARER_TOKEN_BEDROCK")
    return Signer(endpoint, region, credentials, bearer)
