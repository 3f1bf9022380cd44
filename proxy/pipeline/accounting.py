"""The admit and settle stages: what a call may spend before it runs, and what it cost.

Admit reserves the call's worst case on every budget on its path (key → user → team):
the prompt is counted as one token per body byte — byte-level BPE never yields more tokens
than bytes, and the JSON around the text is larger than the chat template's per-message
tokens — plus ``IMAGE_TOKEN_ALLOWANCE`` per image part, plus ``max_tokens`` (or the model's
max output). Because the reservation bounds the real cost, spend never passes a budget.

Settle runs exactly once per admitted call, in the hot path's ``finally``: it swaps the
reservation for the cost of the usage the upstream reported (or an estimate, flagged, when
a stream was cut before its usage chunk) and queues the spend-log row for the flusher.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Literal

import msgspec

from ..auth import Principal, Role
from ..directory import key_account, team_account, user_account
from ..errors import BudgetExceeded, PermissionDenied, RateLimited
from ..ledger import Ledger
from ..pricing import ModelPrice, PriceOverrides, PriceTable, cost, worst_case_cost
from ..request import ParsedRequest
from ..store import SpendLogRow
from ..upstream.deployment import Deployment
from ..usage import Usage, estimate_tokens
from .call import Call

IMAGE_TOKEN_ALLOWANCE = 2_000
ALL_TEAM_MODELS = "all-team-models"


class RequestIds:
    """Unique spend-log ids across restarts: a random boot prefix and a counter."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count:010x}"


class Accounting:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceTable,
        enqueue: Callable[[SpendLogRow], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self._enqueue = enqueue
        self._clock = clock
        self._overrides: dict[str, PriceOverrides] = {}

    def price_of(self, deployment: Deployment, upstream_model: str) -> ModelPrice:
        overrides = self._overrides.get(deployment.id)
        if overrides is None:
            fields = msgspec.structs.asdict(deployment.info)
            for name in ("input_cost_per_token", "output_cost_per_token"):
                value = getattr(deployment.params, name)
                if value is not None:
                    fields[name] = value
            overrides = msgspec.convert(fields, PriceOverrides, strict=False)
            self._overrides[deployment.id] = overrides
        return self.prices.lookup(f"{deployment.provider}/{upstream_model}", overrides=overrides)

    def check_models(self, principal: Principal, model: str) -> None:
        """The model allowlists of the key, its user and its team all have to allow it."""
        if principal.role is not Role.KEY:
            return
        for owner, allowed in (
            ("key", principal.key.models if principal.key else None),
            ("user", principal.user.models if principal.user else None),
            ("team", principal.team.models if principal.team else None),
        ):
            if allowed and model not in allowed and ALL_TEAM_MODELS not in allowed:
                raise PermissionDenied(
                    f"this {owner} may not use model {model!r}",
                    param="model",
                    code="model_not_allowed",
                )

    def admit(
        self, call: Call, principal: Principal, deployment: Deployment, upstream_model: str
    ) -> None:
        request = call.request
        assert request is not None
        call.price = price = self.price_of(deployment, upstream_model)
        if principal.role is not Role.KEY or principal.key_hash is None:
            return
        accounts = [key_account(principal.key_hash)]
        if principal.user is not None:
            accounts.append(user_account(principal.user.user_id))
        if principal.team is not None:
            accounts.append(team_account(principal.team.team_id))
        prompt_upper = request.prompt_bytes + IMAGE_TOKEN_ALLOWANCE * _image_parts(request)
        worst = worst_case_cost(price, prompt_tokens=prompt_upper, max_tokens=request.max_tokens)
        tokens = estimate_tokens(request.prompt_bytes) + (request.max_tokens or 0)
        call.reservation = self.ledger.admit(call.uid, accounts, tokens=tokens, cost=worst)

    def admit_chain(
        self, call: Call, principal: Principal, candidates: list[tuple[Deployment, str]]
    ) -> None:
        """Admit once for a request that may be retried or fall back: the reservation is the
        most expensive worst case among every deployment it may reach, so whichever serves
        (and is billed) the budget holds."""
        if len(candidates) == 1 or principal.role is not Role.KEY:
            deployment, upstream_model = candidates[0]
            self.admit(call, principal, deployment, upstream_model)
            return
        request = call.request
        assert request is not None
        worst = max(candidates, key=lambda c: self.worst_case(request, *c))
        self.admit(call, principal, *worst)

    def worst_case(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> float:
        price = self.price_of(deployment, upstream_model)
        prompt_upper = request.prompt_bytes + IMAGE_TOKEN_ALLOWANCE * _image_parts(request)
        return worst_case_cost(price, prompt_tokens=prompt_upper, max_tokens=request.max_tokens)

    def bill_failed_attempt(
        self, call: Call, deployment: Deployment, upstream_model: str, usage: Usage | None
    ) -> bool:
        """Bill an attempt the upstream charged for but that is not the answer (a 200 refusal
        that a content-policy fallback replaces), and reserve afresh for the next attempt.

        The reservation is settled with the refused attempt's cost and a new one is admitted
        for the same worst case, so the budget check stays strict. When the new one is refused
        (budget, limits) the refusal stays the answer and False is returned. The refused
        attempt's spend-log row is ``<request_id>#<n>``, with the request's call_id.
        """
        request = call.request
        assert request is not None
        price = self.price_of(deployment, upstream_model)
        prompt = usage.prompt_tokens if usage is not None else estimate_tokens(request.prompt_bytes)
        completion = usage.completion_tokens if usage is not None else 0
        cached = usage.cached_tokens if usage is not None else 0
        amount = cost(
            price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
        )
        reservation = call.reservation
        if reservation is not None:
            self.ledger.settle(reservation, cost=amount, tokens=prompt + completion)
            try:
                call.reservation = self.ledger.admit(
                    call.uid,
                    reservation.account_ids,
                    tokens=reservation.tokens,
                    cost=reservation.cost,
                )
            except (RateLimited, BudgetExceeded):
                # Already billed above; the final settle must not bill the refusal again.
                call.reservation = None
                return False
        call.failed_attempts += 1
        self._log(
            call,
            f"{call.uid}#{call.failed_attempts}",
            deployment,
            (prompt, completion, cached, amount),
            status="error",
            status_code=200,
            estimated=usage is None,
        )
        return True

    def settle(self, call: Call) -> None:
        if call.settled:
            return
        call.settled = True
        request = call.request
        usage = call.usage
        estimated = False
        prompt = completion = cached = 0
        if usage is not None:
            prompt, completion, cached = (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
            )
        elif request is not None and call.reached_upstream and call.relayed_events:
            # A stream cut before its usage chunk (client gone, upstream broke): the upstream
            # billed what it generated, about one token per relayed chunk.
            prompt = estimate_tokens(request.prompt_bytes)
            completion = call.relayed_events
            estimated = True
        elif request is not None and call.response_bytes:
            # A successful answer that carried no usage: billed by a byte estimate, flagged.
            prompt = estimate_tokens(request.prompt_bytes)
            completion = estimate_tokens(call.response_bytes)
            estimated = True
        price = call.price
        amount = (
            cost(price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
            if price is not None
            else 0.0
        )
        call.cost = amount
        reservation = call.reservation
        if reservation is not None:
            self.ledger.settle(reservation, cost=amount, tokens=prompt + completion)
        if request is not None:
            self._log(
                call,
                call.uid,
                call.deployment,
                (prompt, completion, cached, amount),
                status=_status(call.status),
                status_code=call.status,
                estimated=estimated,
            )

    def _log(
        self,
        call: Call,
        request_id: str,
        deployment: Deployment | None,
        billed: tuple[int, int, int, float],
        *,
        status: Literal["success", "error", "cancelled"],
        status_code: int,
        estimated: bool,
    ) -> None:
        """Queue one spend-log row; ``billed`` is (prompt, completion, cached tokens, cost)."""
        principal = call.principal
        request = call.request
        if principal is None or request is None:
            return
        prompt, completion, cached, amount = billed
        now = self._clock()
        elapsed = time.perf_counter() - call.started
        self._enqueue(
            SpendLogRow(
                request_id=request_id,
                call_id=call.call_id,
                key_hash=principal.key_hash if principal.role is Role.KEY else None,
                user_id=principal.user.user_id if principal.user else None,
                team_id=principal.team.team_id if principal.team else None,
                model=request.model,
                deployment=(deployment.label if deployment else None),
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                total_tokens=prompt + completion,
                cost=amount,
                latency_ms=round(elapsed * 1000, 3),
                status=status,
                status_code=status_code,
                tags=list(principal.key.tags) if principal.key else [],
                estimated=estimated,
                start_time=now - elapsed,
                end_time=now,
                guardrails=call.guardrails,
                cache_hit=call.cache_status == "hit",
                saved_cost=call.saved_cost,
            )
        )

    def key_spend(self, principal: Principal | None) -> float | None:
        if principal is None or principal.role is not Role.KEY or principal.key_hash is None:
            return None
        return self.ledger.spend(key_account(principal.key_hash))

    def ratelimit_headers(self, principal: Principal | None) -> dict[str, str]:
        if principal is None or principal.role is not Role.KEY or principal.key_hash is None:
            return {}
        account = key_account(principal.key_hash)
        if not self.ledger.has_account(account):
            return {}
        return self.ledger.ratelimit_headers(account)


def _status(code: int) -> Literal["success", "error", "cancelled"]:
    if code == 499:
        return "cancelled"
    return "success" if 200 <= code < 400 else "error"


def _image_parts(request: ParsedRequest) -> int:
    return request.image_parts()
