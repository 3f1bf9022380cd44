"""``azure/``: Azure OpenAI, which speaks OpenAI's format at a per-deployment URL.

The model after ``azure/`` names the Azure *deployment*: requests go to
``{api_base}/openai/deployments/{deployment}/{chat/completions|completions|embeddings}
?api-version={api_version}`` with the key in the ``api-key`` header, and the body and the
reply pass through untouched like OpenAI's. An ``api_base`` ending in ``/openai/v1`` uses
Azure's versionless v1 API (OpenAI's own paths, no ``api-version``).
"""

from __future__ import annotations

from urllib.parse import quote

from ..parse import ParsedRequest
from .base import Deployment
from .openai import OpenAICompatible

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAI(OpenAICompatible):
    def headers(self, deployment: Deployment, stream: bool) -> dict[str, str]:
        headers = super().headers(deployment, stream)
        headers.pop("authorization", None)
        headers.pop("openai-organization", None)
        if deployment.api_key:
            headers["api-key"] = deployment.api_key
        if deployment.params.extra_headers:
            headers.update(deployment.params.extra_headers)
        return headers

    def url(self, request: ParsedRequest, deployment: Deployment) -> str:
        base = deployment.api_base.rstrip("/")
        if base.endswith("/openai/v1"):
            return f"{base}/{request.kind.value}"
        name = quote(deployment.resolve_model(request.model), safe="")
        version = quote(deployment.params.api_version or DEFAULT_API_VERSION, safe="")
        if "/openai/deployments/" not in base:
            base = f"{base}/openai/deployments/{name}"
        return f"{base}/{request.kind.value}?api-version={version}"
