"""Region-restricted routing: an end user's ``allowed_model_region`` ("eu" or "us").

LiteLLM's meaning: an end user (customer) with an ``allowed_model_region`` is only routed to
deployments of the model group that are in that region; a group with no such deployment is
refused (403, ``model_region_not_allowed``), never served from elsewhere. A deployment's region
is ``litellm_params.region_name`` ("eu" / "us", or a provider region such as ``eu-west-1``,
``europe-west4``, ``us-east-1``); without it, the provider's own region setting
(``aws_region_name`` for Bedrock, ``vertex_location`` for Vertex). A deployment whose region
cannot be told is in no region: a region-restricted end user is never sent to it (fail closed).

Only requests naming an end user that has a region pay for any of this (the dispatcher checks
one dict for emptiness otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PermissionDenied
from ..upstream.deployment import Deployment

REGIONS = ("eu", "us")
# Provider region names by prefix (AWS ``eu-west-1``, GCP ``europe-west4``, ``us-central1``).
_PREFIXES = (("eu-", "eu"), ("europe-", "eu"), ("us-", "us"))


def region_of_name(name: str | None) -> str | None:
    """The region ("eu" or "us") of a region name (``eu``, ``eu-west-1``, ``europe-west4``,
    ``us-east-1``), None when it is neither or unknown."""
    if not name:
        return None
    lowered = name.strip().lower()
    if lowered in REGIONS:
        return lowered
    for prefix, region in _PREFIXES:
        if lowered.startswith(prefix):
            return region
    return None


def deployment_region(deployment: Deployment) -> str | None:
    """The region a deployment serves from (see the module docstring)."""
    params = deployment.params
    if params.region_name:
        return region_of_name(params.region_name)
    return region_of_name(params.aws_region_name) or region_of_name(params.vertex_location)


def in_region(group: Sequence[Deployment], region: str) -> list[Deployment]:
    """The deployments of ``group`` in ``region`` (possibly none)."""
    return [d for d in group if deployment_region(d) == region]


def require_region(model: str, group: Sequence[Deployment], region: str) -> list[Deployment]:
    """The deployments of ``group`` in ``region``; refused (403) when there are none."""
    members = in_region(group, region)
    if not members:
        raise PermissionDenied(
            f"this end user may only use models in region {region!r} (allowed_model_region), "
            f"and model {model!r} has no deployment there",
            param="model",
            code="model_region_not_allowed",
        )
    return members
