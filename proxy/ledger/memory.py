"""The in-memory ledger: rpm/tpm windows, parallel-request counts and budgets per account.

It lives on the one event loop and has no ``await`` anywhere, so ``admit`` checks every
account and reserves on all of them atomically without locks. Accounts are opaque ids such as
``key:<hash>``, ``user:<id>``, ``team:<id>``; the part before ``:`` (the *kind*) is the only part
of an id that ever appears in an error message.

Money: ``spend`` is a float dollar total. ``reserved`` (the worst-case cost of requests in
flight) is kept as an integer count of nano-dollars, so reserving a cost and settling it later
returns ``reserved`` to exactly its prior value however many requests overlap, and it is
exactly 0.0 whenever nothing is in flight. Budget comparisons allow ``_EPSILON`` (a billionth
of a dollar) of float rounding so a budget of 1.00 admits ten reservations of 0.10.

Windows are exact sliding 60 s windows and are only recorded while the matching limit is set:
a deque of admission times for rpm, and for tpm a min-heap of ``(admitted_at, tokens)`` for
settled requests (settles arrive out of admission order, and a heap still prunes the oldest
first) plus a running count of tokens reserved by requests still in flight.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proxy.errors import BudgetExceeded, RateLimited
from proxy.ledger.durations import Duration, next_reset, parse_duration

WINDOW_SECONDS = 60.0
_NANOS = 1_000_000_000
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Limits:
    max_budget: float | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    budget_duration: str | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """A snapshot of one account, as of the moment ``Ledger.account`` was called."""

    account_id: str
    limits: Limits
    spend: float
    reserved: float
    in_flight: int
    budget_reset_at: float | None
    requests_in_window: int
    tokens_in_window: int


class _Account:
    __slots__ = (
        "budget_reset_at",
        "duration",
        "id",
        "in_flight",
        "kind",
        "limits",
        "max_budget",
        "max_parallel",
        "requests",
        "reserved_nanos",
        "reserved_tokens",
        "rpm_limit",
        "settled_tokens",
        "spend",
        "tpm_limit",
        "window_tokens",
    )

    def __init__(self, account_id: str) -> None:
        self.id = account_id
        kind, sep, _ = account_id.partition(":")
        self.kind = kind if sep and kind else "account"
        self.limits = Limits()
        self.duration: Duration | None = None
        # Copies of the limits, read on every admit without a second attribute hop.
        self.max_budget: float | None = None
        self.rpm_limit: int | None = None
        self.tpm_limit: int | None = None
        self.max_parallel: int | None = None
        self.spend = 0.0
        self.reserved_nanos = 0
        self.in_flight = 0
        self.budget_reset_at: float | None = None
        self.requests: deque[float] = deque()
        self.settled_tokens: list[tuple[float, int]] = []
        self.window_tokens = 0  # sum of settled_tokens
        self.reserved_tokens = 0  # tokens reserved by requests in flight

    def apply_limits(self, limits: Limits, duration: Duration | None) -> None:
        self.limits = limits
        self.duration = duration
        self.max_budget = limits.max_budget
        self.rpm_limit = limits.rpm_limit
        self.tpm_limit = limits.tpm_limit
        self.max_parallel = limits.max_parallel_requests
        if limits.rpm_limit is None:
            self.requests.clear()
        if limits.tpm_limit is None:
            self.settled_tokens.clear()
            self.window_tokens = 0

    def prune_requests(self, now: float) -> deque[float]:
        requests = self.requests
        cutoff = now - WINDOW_SECONDS
        while requests and requests[0] <= cutoff:
            requests.popleft()
        return requests

    def tokens_used(self, now: float) -> int:
        heap = self.settled_tokens
        cutoff = now - WINDOW_SECONDS
        while heap and heap[0][0] <= cutoff:
            self.window_tokens -= heapq.heappop(heap)[1]
        return self.window_tokens + self.reserved_tokens

    def tokens_retry_after(self, excess: int, now: float) -> float:
        """Seconds until enough settled tokens leave the window to fit ``excess`` more."""
        freed = 0
        for admitted_at, tokens in sorted(self.settled_tokens):
            freed += tokens
            # An empty window admits any request, however large.
            if freed >= excess or (freed == self.window_tokens and not self.reserved_tokens):
                return admitted_at + WINDOW_SECONDS - now
        return 1.0  # only in-flight reservations are in the way; they settle soon


class Reservation:
    """What ``admit`` reserved; hand it back to ``settle`` or ``release`` exactly once."""

    __slots__ = ("_accounts", "_nanos", "cost", "request_id", "settled", "timestamp", "tokens")

    def __init__(
        self,
        request_id: str,
        accounts: list[_Account],
        cost: float,
        nanos: int,
        tokens: int,
        timestamp: float,
    ) -> None:
        self.request_id = request_id
        self._accounts = accounts
        self.cost = cost
        self._nanos = nanos
        self.tokens = tokens
        self.timestamp = timestamp
        self.settled = False

    @property
    def account_ids(self) -> tuple[str, ...]:
        return tuple(account.id for account in self._accounts)

    def __repr__(self) -> str:
        return (
            f"Reservation(request_id={self.request_id!r}, accounts={len(self._accounts)}, "
            f"cost={self.cost!r}, tokens={self.tokens!r}, settled={self.settled!r})"
        )


class Ledger:
    """Admission control and spend for every account, in memory, on the event loop."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._dirty: set[str] = set()

    def set_account(
        self,
        account_id: str,
        limits: Limits,
        *,
        spend: float | None = None,
        budget_reset_at: float | None = None,
    ) -> None:
        """Create or update an account; live state (in flight, reserved, windows) is kept.

        ``spend`` replaces the current spend (restoring from the database). Without a
        ``budget_reset_at`` a budget duration that is new or changed gets the next boundary
        from now, and the account is marked dirty so the flusher stores it. Raises
        ``ValueError`` for a bad ``budget_duration``, before changing anything.
        """
        duration = (
            None if limits.budget_duration is None else parse_duration(limits.budget_duration)
        )
        account = self._accounts.get(account_id)
        if account is None:
            account = self._accounts[account_id] = _Account(account_id)
        previous_duration = account.duration
        account.apply_limits(limits, duration)
        if spend is not None:
            account.spend = float(spend)
        if duration is None:
            account.budget_reset_at = None
        elif budget_reset_at is not None:
            account.budget_reset_at = float(budget_reset_at)
        elif duration != previous_duration or account.budget_reset_at is None:
            account.budget_reset_at = next_reset(duration, self._clock())
            self._dirty.add(account_id)

    def drop_account(self, account_id: str) -> None:
        """Forget an account; its in-flight reservations settle against nothing."""
        self._accounts.pop(account_id, None)
        self._dirty.discard(account_id)

    def has_account(self, account_id: str) -> bool:
        return account_id in self._accounts

    def admit(
        self, request_id: str, account_ids: Sequence[str], *, tokens: int, cost: float
    ) -> Reservation:
        """Reserve ``tokens`` and worst-case ``cost`` on every known account, or on none.

        Unknown ids are skipped. Per account, in order: a due budget reset is applied, then
        max parallel requests, rpm, tpm and budget are checked. Raises ``RateLimited`` or
        ``BudgetExceeded`` naming the account's kind, leaving every account unreserved.
        """
        now = self._clock()
        nanos = round(cost * _NANOS)
        accounts: list[_Account] = []
        get = self._accounts.get
        for account_id in account_ids:
            account = get(account_id)
            if account is None or account in accounts:
                continue
            self._check(account, now, tokens, cost)
            accounts.append(account)
        # Every check passed: reserve on all of them (nothing below can raise).
        for account in accounts:
            account.in_flight += 1
            account.reserved_nanos += nanos
            account.reserved_tokens += tokens
            if account.rpm_limit is not None:
                account.requests.append(now)
        return Reservation(request_id, accounts, cost, nanos, tokens, now)

    def _check(self, account: _Account, now: float, tokens: int, cost: float) -> None:
        reset_at = account.budget_reset_at
        if reset_at is not None and now >= reset_at:
            self._reset_budget(account, now)

        limit = account.max_parallel
        if limit is not None and account.in_flight >= limit:
            raise RateLimited(
                f"Parallel request limit reached for {account.kind}: "
                f"{account.in_flight} in flight, max_parallel_requests {limit}",
                retry_after=1.0,
            )

        limit = account.rpm_limit
        if limit is not None:
            requests = account.prune_requests(now)
            if len(requests) >= limit:
                raise RateLimited(
                    f"Rate limit reached for {account.kind}: {len(requests)} requests in the "
                    f"last minute, rpm_limit {limit}",
                    retry_after=requests[0] + WINDOW_SECONDS - now if requests else WINDOW_SECONDS,
                )

        limit = account.tpm_limit
        if limit is not None:
            used = account.tokens_used(now)
            if used and used + tokens > limit:
                raise RateLimited(
                    f"Rate limit reached for {account.kind}: {used} tokens in the last minute "
                    f"+ this request's {tokens} > tpm_limit {limit}",
                    retry_after=account.tokens_retry_after(used + tokens - limit, now),
                )

        budget = account.max_budget
        if budget is not None:
            reserved = account.reserved_nanos / _NANOS
            if account.spend + reserved + cost > budget + _EPSILON:
                in_flight = f" + in flight {_money(reserved)}" if reserved else ""
                raise BudgetExceeded(
                    f"Budget exceeded for {account.kind}: spend {_money(account.spend)}"
                    f"{in_flight} + this request's worst case {_money(cost)} > max_budget "
                    f"{_money(budget)}"
                )

    def _reset_budget(self, account: _Account, now: float) -> None:
        account.spend = 0.0
        duration = account.duration
        account.budget_reset_at = None if duration is None else next_reset(duration, now)
        self._dirty.add(account.id)

    def settle(self, reservation: Reservation, *, cost: float, tokens: int) -> None:
        """Replace a reservation with the actual ``cost`` and ``tokens``; later calls are no-ops.

        Billed is billed: actual cost is added to spend even when it exceeds the reservation.
        Actual tokens count in the tpm window at the time the request was admitted.
        """
        if reservation.settled:
            return
        reservation.settled = True
        admitted_at = reservation.timestamp
        record_tokens = tokens > 0 and admitted_at > self._clock() - WINDOW_SECONDS
        for account in reservation._accounts:
            account.in_flight -= 1
            account.reserved_nanos -= reservation._nanos
            account.reserved_tokens -= reservation.tokens
            if cost:
                account.spend += cost
                self._dirty.add(account.id)
            if record_tokens and account.tpm_limit is not None:
                heapq.heappush(account.settled_tokens, (admitted_at, tokens))
                account.window_tokens += tokens

    def release(self, reservation: Reservation) -> None:
        """Undo a reservation for a request that never reached the upstream."""
        self.settle(reservation, cost=0.0, tokens=0)

    def account(self, account_id: str) -> AccountState:
        """Snapshot of one account (a due budget reset is applied first); KeyError if unknown."""
        account = self._accounts[account_id]
        now = self._clock()
        reset_at = account.budget_reset_at
        if reset_at is not None and now >= reset_at:
            self._reset_budget(account, now)
        return AccountState(
            account_id=account.id,
            limits=account.limits,
            spend=account.spend,
            reserved=account.reserved_nanos / _NANOS,
            in_flight=account.in_flight,
            budget_reset_at=account.budget_reset_at,
            requests_in_window=len(account.prune_requests(now)),
            tokens_in_window=account.tokens_used(now),
        )

    def spend(self, account_id: str) -> float | None:
        """The account's spend (None if unknown): the cheap read for response headers."""
        account = self._accounts.get(account_id)
        return None if account is None else account.spend

    def ratelimit_headers(self, account_id: str) -> dict[str, str]:
        """``x-ratelimit-*`` headers for the account's rpm and tpm limits ({} if neither).

        ``reset-*`` is the time until the oldest request (or settled tokens) in the window
        leaves it, i.e. when ``remaining-*`` next grows.
        """
        account = self._accounts.get(account_id)
        if account is None:
            return {}
        headers: dict[str, str] = {}
        now = self._clock()
        limit = account.rpm_limit
        if limit is not None:
            requests = account.prune_requests(now)
            headers["x-ratelimit-limit-requests"] = str(limit)
            headers["x-ratelimit-remaining-requests"] = str(max(0, limit - len(requests)))
            headers["x-ratelimit-reset-requests"] = _seconds(
                requests[0] + WINDOW_SECONDS - now if requests else 0.0
            )
        limit = account.tpm_limit
        if limit is not None:
            used = account.tokens_used(now)
            heap = account.settled_tokens
            headers["x-ratelimit-limit-tokens"] = str(limit)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - used))
            headers["x-ratelimit-reset-tokens"] = _seconds(
                heap[0][0] + WINDOW_SECONDS - now if heap else 0.0
            )
        return headers

    def drain_dirty(self) -> list[tuple[str, float, float | None]]:
        """``(account_id, spend, budget_reset_at)`` for accounts changed since the last drain."""
        accounts = self._accounts
        changed = [
            (account_id, account.spend, account.budget_reset_at)
            for account_id in self._dirty
            if (account := accounts.get(account_id)) is not None
        ]
        self._dirty.clear()
        return changed

    def outstanding(self) -> tuple[int, float]:
        """Total requests in flight and total reserved cost over all accounts."""
        in_flight = 0
        nanos = 0
        for account in self._accounts.values():
            in_flight += account.in_flight
            nanos += account.reserved_nanos
        return in_flight, nanos / _NANOS


def _money(amount: float) -> str:
    # At least cents, and enough digits that sub-cent per-request costs stay visible.
    text = f"{amount:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _seconds(seconds: float) -> str:
    return f"{max(0, math.ceil(seconds))}s"
