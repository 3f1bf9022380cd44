"""The route stage: which deployment serves a requested model name.

Exact model groups first, then aliases, then wildcard groups (``openai/*``, ``gpt-*``) in
config order. Within a group: deployments cooling down are skipped, request tags narrow the
choice, and the configured strategy (``strategies.py``) picks one. A pick does no I/O.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from ..config import ConfigError
from ..errors import (
    InvalidRequest,
    NoDeploymentAvailable,
    NotFound,
    TollwayError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..pricing import ModelPrice
from ..upstream.deployment import AUTO_ROUTER, Deployment
from .complexity import TierMap
from .policy import RoutingSettings, counts_against_deployment
from .state import DeploymentState
from .strategies import STRATEGY_FUNCTIONS, PickContext

__all__ = ["AUTO_ROUTER", "DeploymentState", "Router", "RoutingSettings"]

log = logging.getLogger("tollway.router")

DEFAULT_TAG = "default"
_USAGE_STRATEGIES = ("usage-based-routing", "usage-based-routing-v2")


def _free_price(deployment: Deployment, upstream_model: str) -> ModelPrice:
    return ModelPrice()


class Router:
    def __init__(
        self,
        deployments: Sequence[Deployment],
        aliases: Mapping[str, str] | None = None,
        *,
        settings: RoutingSettings | None = None,
        price_of: Callable[[Deployment, str], ModelPrice] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or RoutingSettings()
        self._groups: dict[str, list[Deployment]] = {}
        self._patterns: list[tuple[str, list[Deployment]]] = []
        self._states: dict[int, DeploymentState] = {}
        self._tiers: dict[int, TierMap] = {}
        for deployment in deployments:
            self._groups.setdefault(deployment.model_name, []).append(deployment)
            self._states[id(deployment)] = DeploymentState(deployment)
        for name, group in self._groups.items():
            if any(ch in name for ch in "*?["):
                self._patterns.append((name, group))
        self._tagged = {
            name for name, group in self._groups.items() if any(d.params.tags for d in group)
        }
        self._aliases = dict(aliases or {})
        self._random = rng or random.Random()
        self._clock = clock
        self._wall = wall
        self._price_of = price_of or _free_price
        self._strategy = STRATEGY_FUNCTIONS[self.settings.strategy]
        self._context = PickContext(
            self._random, self._price_per_token, self.settings.latency_buffer
        )
        self._requested = ""
        for deployment in deployments:
            if deployment.provider == AUTO_ROUTER:
                self._tiers[id(deployment)] = self._tier_map(deployment)

    def _tier_map(self, deployment: Deployment) -> TierMap:
        params = deployment.params
        where = f"model {deployment.model_name!r} (auto_router)"
        try:
            tiers = TierMap(params.complexity_router_config, params.complexity_router_default_model)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        for model in set(tiers.models.values()):
            group = self._resolve_group(model)
            if group is None:
                raise ConfigError(f"{where}: tier model {model!r} is not in model_list")
            if any(d.provider == AUTO_ROUTER for d in group[1]):
                raise ConfigError(f"{where}: tier model {model!r} is an auto_router itself")
        return tiers

    # -- lookup -------------------------------------------------------------------------------

    def group(self, model: str) -> list[Deployment] | None:
        group = self._groups.get(model)
        if group is not None:
            return group
        for pattern, candidates in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return candidates
        return None

    def _resolve_group(self, model: str) -> tuple[str, list[Deployment]] | None:
        group = self.group(model)
        if group is None:
            alias = self._aliases.get(model)
            if alias is not None:
                model = alias
                group = self.group(alias)
        return None if group is None else (model, group)

    def resolve(self, model: str) -> tuple[str, list[Deployment]]:
        """The model name after aliases, and its group; ``NotFound`` when nothing serves it."""
        found = self._resolve_group(model)
        if found is None:
            shown = model if len(model) <= 100 else model[:100] + "..."
            raise NotFound(
                f"model {shown!r} is not served here; GET /v1/models lists the models",
                param="model",
            )
        return found

    def tier_map(self, deployment: Deployment) -> TierMap | None:
        return self._tiers.get(id(deployment))

    def state(self, deployment: Deployment) -> DeploymentState:
        return self._states[id(deployment)]

    def model_names(self) -> list[str]:
        return [name for name in self._groups if not any(ch in name for ch in "*?[")]

    def groups(self) -> dict[str, list[Deployment]]:
        return self._groups

    def deployments(self) -> list[Deployment]:
        return [d for group in self._groups.values() for d in group]

    # -- run-time changes (models added through /model/new) ------------------------------------
    # Groups are replaced, never changed in place: a call in flight keeps the list it resolved.

    def add(self, deployment: Deployment) -> None:
        """Serve one more deployment from the next request on."""
        name = deployment.model_name
        self._states[id(deployment)] = DeploymentState(deployment)
        self._set_group(name, [*self._groups.get(name, ()), deployment])
        if deployment.params.tags:
            self._tagged.add(name)

    def remove(self, deployment_id: str) -> Deployment | None:
        """Stop routing to a deployment; calls already on it finish."""
        for name, group in self._groups.items():
            found = next((d for d in group if d.id == deployment_id), None)
            if found is not None:
                self._set_group(name, [d for d in group if d is not found])
                return found
        return None

    def _set_group(self, name: str, group: list[Deployment]) -> None:
        if not group:
            self._groups.pop(name, None)
            self._patterns = [(p, g) for p, g in self._patterns if p != name]
            return
        self._groups[name] = group
        if any(ch in name for ch in "*?["):
            # A wildcard group keeps its place: patterns are tried in config order.
            patterns = [(p, group if p == name else g) for p, g in self._patterns]
            if all(p != name for p, _ in patterns):
                patterns.append((name, group))
            self._patterns = patterns

    # -- picking ------------------------------------------------------------------------------

    def pick(self, model: str, **options: object) -> tuple[Deployment, str]:
        """A deployment for ``model`` and the model name to send it."""
        model, group = self.resolve(model)
        state = self.choose(model, group, **options)  # type: ignore[arg-type]
        return state.deployment, state.deployment.resolve_model(model)

    def choose(
        self,
        model: str,
        group: Sequence[Deployment],
        *,
        tags: Collection[str] = (),
        exclude: Collection[int] = (),
        stream: bool = False,
    ) -> DeploymentState:
        """One usable deployment of ``group`` (``model`` is the name after aliases).

        ``exclude`` holds ``id(deployment)`` of deployments that already failed this request;
        they are used again only when nothing else is usable. Raises
        ``NoDeploymentAvailable`` (with the time until one is usable) when all are cooling.
        """
        pool = group
        if (
            group
            and group[0].model_name in self._tagged
            and self.settings.tag_filtering is not False
        ):
            pool = self._with_tags(model, group, tags)
        now = self._clock()
        states = self._states
        usage = self.settings.strategy in _USAGE_STRATEGIES
        wall = self._wall()
        candidates: list[DeploymentState] = []
        excluded: list[DeploymentState] = []
        soonest = math.inf
        for deployment in pool:
            state = states[id(deployment)]
            if state.cooled_until > now:
                soonest = min(soonest, state.cooled_until - now)
                continue
            if usage:
                free = state.headroom(wall)
                if free is not None and free <= 0:
                    soonest = min(soonest, 60.0 - wall % 60.0)
                    continue
            if exclude and id(deployment) in exclude:
                excluded.append(state)
            else:
                candidates.append(state)
        if not candidates:
            candidates = excluded
        if not candidates:
            wait = soonest if soonest != math.inf else 1.0
            raise NoDeploymentAvailable(
                f"no deployment of {model!r} is available: all are cooling down or at their "
                f"rate limit; retry in {wait:.1f}s",
                retry_after=wait,
            )
        if len(candidates) == 1:
            return candidates[0]
        context = self._context
        context.stream = stream
        context.wall = wall
        self._requested = model
        return self._strategy(context, candidates)

    def _with_tags(
        self, model: str, group: Sequence[Deployment], tags: Collection[str]
    ) -> Sequence[Deployment]:
        if tags:
            matched = [d for d in group if any(tag in d.params.tags for tag in tags)]
            if matched:
                return matched
        defaults = [d for d in group if DEFAULT_TAG in d.params.tags]
        if defaults:
            return defaults
        if tags:
            raise InvalidRequest(
                f"no deployment of {model!r} has any of the tags {sorted(tags)} "
                f"(and none is tagged {DEFAULT_TAG!r})",
                param="metadata.tags",
                code="no_deployment_with_tags",
            )
        return group

    def _price_per_token(self, state: DeploymentState) -> float:
        deployment = state.deployment
        price = self._price_of(deployment, deployment.resolve_model(self._requested))
        return price.input_cost_per_token + price.output_cost_per_token

    def soonest_usable(self, group: Sequence[Deployment]) -> float:
        """Seconds until some deployment of ``group`` stops cooling (0: one is usable now)."""
        now = self._clock()
        return max(0.0, min((self._states[id(d)].cooled_until - now for d in group), default=0.0))

    # -- feedback from dispatch --------------------------------------------------------------

    def started(self, state: DeploymentState) -> None:
        state.in_flight += 1
        state.count_request(self._wall())

    def finished(
        self,
        state: DeploymentState,
        *,
        status: int,
        tokens: int = 0,
        latency: float | None = None,
        first_token: bool = False,
    ) -> None:
        """An attempt is over (for a stream: the stream is); ``started`` was called for it."""
        state.in_flight -= 1
        state.record_outcome(status)
        if tokens:
            state.count_tokens(self._wall(), tokens)
        if latency is not None:
            state.record_latency(latency, first_token=first_token)

    def failed(self, state: DeploymentState, exc: TollwayError, latency: float) -> None:
        """An attempt failed before any byte reached the client."""
        state.in_flight -= 1
        state.record_outcome(exc.status)
        if not counts_against_deployment(exc):
            return
        if isinstance(exc, UpstreamTimeout):
            # A timeout is the slowest possible answer; latency routing should learn that.
            state.record_latency(latency, first_token=False)
            state.record_latency(latency, first_token=True)
        rate_limited = isinstance(exc, UpstreamStatusError) and exc.upstream_status == 429
        retry_after = exc.retry_after_s if isinstance(exc, UpstreamStatusError) else None
        settings = self.settings
        state.record_failure(
            self._clock(), settings.allowed_fails, settings.cooldown_s, rate_limited, retry_after
        )
