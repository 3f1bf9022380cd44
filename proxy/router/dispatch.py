"""The route → admit → call-upstream stages: pick a deployment, reserve, send.

Route runs before admit so the reservation is priced with the chosen deployment; a pick is
a dict lookup with no I/O, so nothing is spent on a call that admit rejects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..parse import ParsedRequest
from ..providers.base import Provider, Reply
from . import Router

if TYPE_CHECKING:
    from ..accounting import Accounting
    from ..auth import Principal
    from ..hotpath import Call


class Dispatcher:
    def __init__(
        self, router: Router, providers: Mapping[str, Provider], accounting: Accounting
    ) -> None:
        self.router = router
        self.providers = providers
        self.accounting = accounting

    async def __call__(self, call: Call, principal: Principal, request: ParsedRequest) -> Reply:
        deployment, upstream_model = self.router.pick(request.model)
        call.deployment = deployment
        self.accounting.admit(call, principal, deployment, upstream_model)
        provider = self.providers[deployment.provider]
        started = time.perf_counter()
        call.reached_upstream = True
        try:
            return await provider.send(request, deployment, upstream_model)
        finally:
            call.upstream_s = time.perf_counter() - started
