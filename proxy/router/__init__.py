"""The route stage: which deployment serves a requested model name.

Exact model groups first, then aliases, then wildcard groups (``openai/*``, ``gpt-*``) in
config order. A pick does no I/O.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence

from ..errors import NotFound
from ..providers.base import Deployment


class Router:
    def __init__(
        self, deployments: Sequence[Deployment], aliases: Mapping[str, str] | None = None
    ) -> None:
        self._groups: dict[str, list[Deployment]] = {}
        self._patterns: list[tuple[str, list[Deployment]]] = []
        for deployment in deployments:
            self._groups.setdefault(deployment.model_name, []).append(deployment)
        for name, group in self._groups.items():
            if any(ch in name for ch in "*?["):
                self._patterns.append((name, group))
        self._aliases = dict(aliases or {})
        self._random = random.Random()

    def group(self, model: str) -> list[Deployment] | None:
        group = self._groups.get(model)
        if group is not None:
            return group
        for pattern, candidates in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return candidates
        return None

    def pick(self, model: str) -> tuple[Deployment, str]:
        """A deployment for ``model`` and the model name to send it."""
        group = self.group(model)
        if group is None:
            alias = self._aliases.get(model)
            if alias is not None:
                model = alias
                group = self.group(alias)
        if group is None:
            shown = model if len(model) <= 100 else model[:100] + "..."
            raise NotFound(
                f"model {shown!r} is not served here; GET /v1/models lists the models",
                param="model",
            )
        deployment = group[0] if len(group) == 1 else self._random.choice(group)
        return deployment, deployment.resolve_model(model)

    def model_names(self) -> list[str]:
        return [name for name in self._groups if not any(ch in name for ch in "*?[")]

    def deployments(self) -> list[Deployment]:
        return [d for group in self._groups.values() for d in group]
