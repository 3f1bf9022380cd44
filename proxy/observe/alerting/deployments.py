"""Deployment health alerts, from polling the router's per-deployment state.

Polling (every second, from the alerter's background task) rather than a hook in the router:
a recovery has no event of its own — it is time passing — and a poll sees both. Each state's
``cooldowns`` counter grows by one per cooldown, so a cooldown shorter than the poll interval
is still seen.

    cooldown_deployment  a deployment started a cooldown (one alert per cooldown)
    outage_alerts        every deployment of a model group is cooling down (``outage``), and
                         later one of them is usable again (``outage_recovered``)
"""

from __future__ import annotations

from collections.abc import Callable

from ...routing import Router
from .payload import Alert


class DeploymentWatch:
    def __init__(
        self, router: Router, monotonic: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self._router = router
        self._monotonic = monotonic
        self._wall = wall
        # Cooldowns already reported, per deployment; the starting counts are not news.
        self._cooldowns = {id(d): router.state(d).cooldowns for d in router.deployments()}
        self._down: set[str] = set()

    def check(self) -> list[Alert]:
        """Alerts for what changed since the last check."""
        router = self._router
        now = self._monotonic()
        wall = self._wall()
        alerts: list[Alert] = []
        for group_name, group in router.groups().items():
            cooling = 0
            for deployment in group:
                state = router.state(deployment)
                seen = self._cooldowns.get(id(deployment), 0)
                if state.cooldowns > seen:
                    self._cooldowns[id(deployment)] = state.cooldowns
                    left = max(0.0, state.cooled_until - now)
                    alerts.append(
                        Alert(
                            alert_type="cooldown_deployment",
                            event="deployment_cooldown",
                            event_group="deployment",
                            event_message=(
                                f"Deployment {deployment.label} of {group_name!r} is cooling "
                                f"down for {left:.1f}s after failures or a rate limit"
                            ),
                            level="Medium",
                            timestamp=wall,
                            model_group=group_name,
                            deployment=deployment.label,
                        )
                    )
                if state.cooling(now):
                    cooling += 1
            down = bool(group) and cooling == len(group)
            if down and group_name not in self._down:
                self._down.add(group_name)
                alerts.append(
                    Alert(
                        alert_type="outage_alerts",
                        event="outage",
                        event_group="model_group",
                        event_message=(
                            f"Every deployment of {group_name!r} ({len(group)}) is cooling "
                            f"down: calls to it fail until one recovers"
                        ),
                        level="High",
                        timestamp=wall,
                        model_group=group_name,
                    )
                )
            elif not down and group_name in self._down:
                self._down.discard(group_name)
                alerts.append(
                    Alert(
                        alert_type="outage_alerts",
                        event="outage_recovered",
                        event_group="model_group",
                        event_message=f"{group_name!r} has a usable deployment again",
                        level="Low",
                        timestamp=wall,
                        model_group=group_name,
                    )
                )
        return alerts
