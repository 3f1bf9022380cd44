"""The admit and settle stages: what a call may spend before it runs, and what it cost.

Admit reserves the call's worst case on every level with a budget, in one step
(organization → team → user → key → end user, and a key's reusable budget): the prompt is
``proxy.estimate``'s upper estimate of its tokens (one token per body byte when no level has a
budget, where the figure matters to no one), plus ``IMAGE_TOKEN_ALLOWANCE`` per image part,
plus ``max_tokens`` (or the model's max output). When that does not fit but the prompt and at
least ``min_capped_tokens`` of output do, the call is admitted with its output limit lowered
to what the budget pays for (rewritten in the request, reported in
``x-tollway-max-tokens-capped``). Because the reservation bounds the real cost, spend never
passes a budget. The levels of a key are worked out once per key record and kept
(``_Chain``), so a call pays for the levels it has, never for those it could have.

Settle runs exactly once per admitted call, in the hot path's ``finally``: it swaps the
reservation for the cost of the usage the upstream reported (or an estimate, flagged, when
a stream was cut before its usage chunk) and queues the spend-log row for the flusher.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import msgspec

from ..auth import Principal, Role
from ..directory import key_account, team_account, user_account
from ..errors import BudgetExceeded, InvalidRequest, PermissionDenied, RateLimited, TollwayError
from ..estimate import prompt_token_bound
from ..hierarchy import Hierarchy, organization_account
from ..ledger import Ledger
from ..ledger.base import LOCAL_TAG, SharedLedger
from ..ledger.memory import round_money
from ..pricing import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    ModelPrice,
    PriceOverrides,
    PriceTable,
    cost,
    unpriced_message,
)
from ..request import ParsedRequest
from ..store import KeyRow, SpendLogRow, TeamRow, UserRow
from ..upstream.deployment import Deployment
from ..usage import Usage, estimate_tokens
from .call import Call
from .policy import has_model_limits, member_accounts, model_accounts

IMAGE_TOKEN_ALLOWANCE = 2_000
# Below this many output tokens a capped reply is not worth sending: the call is refused.
MIN_CAPPED_TOKENS = 16
_MAX_CHAINS = 65_536
# Upstream models that take ``max_completion_tokens`` only (OpenAI's reasoning models).
_COMPLETION_TOKENS_ONLY = re.compile(r"^(?:responses/)?(?:o\d|gpt-5)")


class _Chain(NamedTuple):
    """The ledger accounts of one key's calls, worked out once per key record."""

    key: KeyRow | None
    user: UserRow | None
    team: TeamRow | None
    generation: int
    accounts: tuple[str, ...]
    budgeted: bool
    # The key's organization's model list (None: no organization, or it allows every model).
    organization_models: frozenset[str] | None
    organization_blocked: bool


# Prices cached per (deployment, upstream model) before the cache starts over.
_MAX_PRICED = 4096


class RequestIds:
    """Unique spend-log ids across restarts: a random boot prefix and a counter."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = 0

    @property
    def count(self) -> int:
        """Ids handed out since start-up (one per inference request)."""
        return self._count

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
        shared: SharedLedger | None = None,
        hierarchy: Hierarchy | None = None,
        min_capped_tokens: int = MIN_CAPPED_TOKENS,
    ) -> None:
        self.ledger = ledger
        self.hierarchy = hierarchy
        self.min_capped_tokens = min_capped_tokens
        self._chains: dict[str, _Chain] = {}
        # A shared (Redis) ledger: admission is awaited in ``confirm``; None is the default.
        self.shared = shared
        self.prices = prices
        self._enqueue = enqueue
        self._clock = clock
        self._overrides: dict[str, PriceOverrides] = {}
        self._priced: dict[tuple[str, str], ModelPrice] = {}

    def price_of(self, deployment: Deployment, upstream_model: str) -> ModelPrice:
        # Asked two or three times per request (context check, the call's price, routing by
        # cost): one dict lookup instead of hashing the overrides struct each time.
        key = (deployment.id, upstream_model)
        price = self._priced.get(key)
        if price is None:
            price = self._price_of(deployment, upstream_model)
            if len(self._priced) >= _MAX_PRICED:
                self._priced.clear()  # wildcard deployments: any number of model names
            self._priced[key] = price
        return price

    def _price_of(self, deployment: Deployment, upstream_model: str) -> ModelPrice:
        overrides = self._overrides.get(deployment.id)
        if overrides is None:
            fields = msgspec.structs.asdict(deployment.info)
            for name in ("input_cost_per_token", "output_cost_per_token"):
                value = getattr(deployment.params, name)
                if value is not None:
                    fields[name] = value
            overrides = msgspec.convert(fields, PriceOverrides, strict=False)
            self._overrides[deployment.id] = overrides
        # Azure deployment names and custom names are priced as the model they run.
        model = deployment.info.base_model or f"{deployment.provider}/{upstream_model}"
        return self.prices.lookup(model, overrides=overrides)

    def forget_price(self, deployment_id: str) -> None:
        """Drop a deployment's cached prices (it was changed at run time)."""
        self._overrides.pop(deployment_id, None)
        for key in [k for k in self._priced if k[0] == deployment_id]:
            del self._priced[key]

    def forget_prices(self) -> None:
        """Drop every cached price (the config was reloaded)."""
        self._overrides.clear()
        self._priced.clear()

    def admit(
        self,
        call: Call,
        principal: Principal,
        deployment: Deployment,
        upstream_model: str,
        others: Sequence[tuple[Deployment, str]] = (),
    ) -> None:
        """Reserve the call's worst case on every account of its levels (see the module
        docstring); ``others`` are the deployments a retry or fallback may reach."""
        request = call.request
        assert request is not None
        call.price = price = self.price_of(deployment, upstream_model)
        if principal.role is not Role.KEY or principal.key_hash is None:
            # The master key has no levels, but the end user it names does: LiteLLM holds
            # an end user to its limits whichever key calls for it.
            hierarchy = self.hierarchy
            if hierarchy is None or not hierarchy.active:
                return
            end_user = call.end_user or request.end_user()
            account = hierarchy.end_user_account(end_user) if end_user else None
            if account is None:
                return
            # Only a budget (its own, its budget_id's or max_end_user_budget) needs a price.
            row = hierarchy.customers.get(end_user) if end_user else None
            budgeted = row is None or hierarchy.limits_of(row).max_budget is not None
            accounts = [account]
        else:
            accounts, budgeted = self.accounts_of(
                principal, request.model, call.end_user or request.end_user()
            )
        # A budget on any level (organization and end user too) cannot price a call blind.
        if not price.priced and not self.prices.allow_unpriced and budgeted:
            raise InvalidRequest(
                unpriced_message(f"{deployment.provider}/{upstream_model}"),
                param="model",
                code="model_unpriced",
            )
        candidates = [(deployment, upstream_model), *others]
        prompt_cost, output_price, max_output = self.bounds(request, candidates, exact=False)
        worst = prompt_cost + max_output * output_price
        if budgeted and (self.shared is not None or not self.ledger.fits(accounts, worst)):
            # The one-token-per-byte bound does not fit (or cannot be checked here): pay for
            # the tight estimate (linear in the body: ~1.7 ms for 1 MB), so the budget can be
            # spent to the last cent. When the loose bound fits, both admit the same call.
            prompt_cost, output_price, max_output = self.bounds(request, candidates, exact=True)
            worst = prompt_cost + max_output * output_price
        tokens = estimate_tokens(request.prompt_bytes) + (request.max_tokens or 0)
        least = min(self.min_capped_tokens, max_output)
        if self.shared is None:
            call.reservation = self.ledger.admit(
                call.uid,
                accounts,
                tokens=tokens,
                cost=worst,
                output_price=output_price,
                max_output_tokens=max_output,
                min_output_tokens=least,
            )
            self._apply_cap(call, upstream_model)
        else:
            call.reservation = self.shared.pending(
                call.uid,
                accounts,
                tokens=tokens,
                cost=worst,
                output_price=output_price,
                max_output_tokens=max_output,
                min_output_tokens=least,
            )
            call.admitted_model = upstream_model

    def accounts_of(
        self, principal: Principal, model: str, end_user: str | None = None
    ) -> tuple[list[str], bool]:
        """The ledger accounts a virtual key's call to ``model`` is admitted and billed on
        (key → user → team → organization → reusable budget, the key's per-model limits, the
        team member's budget, the end user's), and whether any of them has a budget. Raises
        ``PermissionDenied`` when the key's organization is blocked or does not allow
        ``model``. For every admission path (chat's ``admit``, the side endpoints)."""
        chain = self._chain(principal)
        if chain.organization_blocked:
            raise PermissionDenied("the key's organization is blocked", code="organization_blocked")
        if chain.organization_models is not None and model not in chain.organization_models:
            raise PermissionDenied(
                f"this organization may not use model {model!r}",
                param="model",
                code="model_not_allowed",
            )
        accounts = list(chain.accounts)
        budgeted = chain.budgeted
        key = principal.key
        if key is not None and key.metadata and has_model_limits(key.metadata):
            accounts += model_accounts(self.ledger, accounts[0], key.metadata, model)
            budgeted = True
        if principal.team is not None and principal.team.metadata:
            extra = member_accounts(self.ledger, principal)
            if extra:
                accounts += extra
                budgeted = True
        hierarchy = self.hierarchy
        if end_user and hierarchy is not None and hierarchy.active:
            account = hierarchy.end_user_account(end_user)
            if account is not None:
                accounts.append(account)
                budgeted = True
        return accounts, budgeted

    def _chain(self, principal: Principal) -> _Chain:
        """The key's accounts (key → user → team → organization), kept per key record and
        rebuilt when the key, its user or team record, or the hierarchy changes."""
        key_hash = principal.key_hash
        assert key_hash is not None
        hierarchy = self.hierarchy
        generation = hierarchy.generation if hierarchy is not None else 0
        chain = self._chains.get(key_hash)
        if (
            chain is not None
            and chain.key is principal.key
            and chain.user is principal.user
            and chain.team is principal.team
            and chain.generation == generation
        ):
            return chain
        key, user, team = principal.key, principal.user, principal.team
        accounts = [key_account(key_hash)]
        budgeted = any(
            owner is not None and owner.max_budget is not None for owner in (key, user, team)
        )
        if user is not None:
            accounts.append(user_account(user.user_id))
        if team is not None:
            accounts.append(team_account(team.team_id))
        organization_models: frozenset[str] | None = None
        organization_blocked = False
        if hierarchy is not None:
            organization = hierarchy.organization_of(
                team.metadata.get("organization_id") if team is not None else None
            )
            if organization is not None:
                accounts.append(organization_account(organization.organization_id))
                budgeted = budgeted or hierarchy.limits_of(organization).max_budget is not None
                if organization.models:
                    organization_models = frozenset(organization.models)
                organization_blocked = organization.blocked
            budget_id = key.metadata.get("budget_id") if key is not None else None
            if isinstance(budget_id, str) and key is not None:
                account = hierarchy.key_budget(
                    key_hash, budget_id, self.ledger.spend(accounts[0]) or 0.0
                )
                if account is not None:
                    accounts.append(account)
                    budgeted = True
        if len(self._chains) >= _MAX_CHAINS:
            self._chains.clear()
        chain = _Chain(
            key,
            user,
            team,
            generation,
            tuple(accounts),
            budgeted,
            organization_models,
            organization_blocked,
        )
        self._chains[key_hash] = chain
        return chain

    def bounds(
        self,
        request: ParsedRequest,
        candidates: Sequence[tuple[Deployment, str]],
        *,
        exact: bool = True,
    ) -> tuple[float, float, int]:
        """(prompt cost, output price per token, output tokens) bounding the call on every
        candidate deployment: the most any of them can charge. ``exact=False`` (no level has
        a budget) skips the prompt estimate for the free one-token-per-byte figure."""
        prompt = prompt_token_bound(request.body) if exact else request.prompt_bytes
        prompt += IMAGE_TOKEN_ALLOWANCE * request.image_parts()
        prompt_cost = output_price = 0.0
        max_output = 0
        for deployment, upstream_model in candidates:
            price = self.price_of(deployment, upstream_model)
            prompt_cost = max(prompt_cost, cost(price, prompt_tokens=prompt, completion_tokens=0))
            output_price = max(output_price, price.output_cost_per_token)
            limit = request.max_tokens or price.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
            max_output = max(max_output, limit)
        return prompt_cost, output_price, max_output

    def _apply_cap(self, call: Call, upstream_model: str) -> None:
        """Send the capped output limit upstream when the budget only paid for that much."""
        reservation = call.reservation
        request = call.request
        if reservation is None or reservation.output_cap is None or request is None:
            return
        cap = reservation.output_cap
        request.cap_output(
            cap, completion_tokens_field=bool(_COMPLETION_TOKENS_ONLY.match(upstream_model))
        )
        call.output_cap = cap

    async def confirm(self, call: Call) -> None:
        """The shared ledger's admission (one Redis round trip), right after ``admit``."""
        reservation = call.reservation
        if reservation is None or self.shared is None:
            return
        try:
            call.reservation = await self.shared.admit_remote(reservation)
        except TollwayError:
            call.reservation = None
            raise
        self._apply_cap(call, call.admitted_model or "")

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
        self.admit(call, principal, *worst, others=candidates)

    def worst_case(
        self, request: ParsedRequest, deployment: Deployment, upstream_model: str
    ) -> float:
        prompt_cost, output_price, max_output = self.bounds(
            request, [(deployment, upstream_model)], exact=False
        )
        return prompt_cost + max_output * output_price

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
        amount = round_money(
            cost(price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
        )
        reservation = call.reservation
        if reservation is not None and self.shared is not None:
            # Shared ledger: billed under its own id; the reservation is kept (not re-checked).
            request_id = f"{call.uid}#{call.failed_attempts + 1}"
            self.shared.charge(reservation, request_id, cost=amount, tokens=prompt + completion)
        elif reservation is not None:
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
        # Money is shown and stored at the ledger's precision (never 0.0009600000000000001).
        amount = (
            round_money(
                cost(
                    price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
                )
            )
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
        tags = list(principal.key.tags) if principal.key else []
        reservation = call.reservation
        shared = self.shared
        if shared is not None and reservation is not None and shared.admitted_locally(reservation):
            tags.append(LOCAL_TAG)
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
                tags=tags,
                estimated=estimated,
                start_time=now - elapsed,
                end_time=now,
                guardrails=call.guardrails,
                cache_hit=call.cache_status == "hit",
                saved_cost=round_money(call.saved_cost),
                end_user=call.end_user or request.end_user(),
                organization_id=_organization_of(principal),
                response_id=call.response_id or None,
            )
        )

    def reply_view(self, principal: Principal) -> tuple[float | None, list[tuple[bytes, bytes]]]:
        """A virtual key's spend and ``x-ratelimit-*`` pairs for a reply's headers."""
        if principal.role is not Role.KEY or principal.key_hash is None:
            return None, []
        return self.ledger.reply_view(key_account(principal.key_hash))


def _status(code: int) -> Literal["success", "error", "cancelled"]:
    if code == 499:
        return "cancelled"
    return "success" if 200 <= code < 400 else "error"


def _organization_of(principal: Principal) -> str | None:
    team = principal.team
    if team is None or not team.metadata:
        return None
    organization = team.metadata.get("organization_id")
    return organization if isinstance(organization, str) else None
