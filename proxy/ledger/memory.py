"""The in-memory ledger: rpm/tpm windows, parallel-request counts and budgets per account.

It lives on the one event loop and has no ``await`` anywhere, so ``admit`` checks every
account and reserves on all of them atomically without locks. Accounts are opaque ids such as
``key:<hash>``, ``user:<id>``, ``team:<id>``; the part before ``:`` (the *kind*) is the only part
of an id that ever appears in an error message.

Money is kept as integer pico-dollars (``MONEY_UNIT`` per dollar: finer than any per-token
price in the price table): spend, budgets and the worst-case cost of requests in flight. Sums
are exact, so reserving a cost and settling it later returns ``reserved`` to exactly its prior
value however many requests overlap, a budget of 1.00 admits exactly ten reservations of 0.10,
and a spend read back as dollars is the shortest decimal for it (0.00096, never
0.0009600000000000001). ``round_money`` rounds any dollar figure to the same precision.

Budgets are usable to the last cent (``admit``'s ``output_price``/``max_output_tokens``): when a
request's worst case does not fit the tightest remaining budget but its prompt and at least
``min_output_tokens`` of output do, it is admitted with its output capped to what the budget
pays for (``Reservation.output_cap``); the caller sends that cap upstream as the request's
output limit, so the guarantee holds: spend never passes a budget. A refusal says by how much
the request *would exceed* the remaining budget, after LiteLLM's "Budget has been exceeded!".

Windows are sliding 60 s windows and are only recorded while the matching limit is set: for
rpm, admission times in order with a count each; for tpm, settled tokens by admission time
(settles arrive out of admission order: a min-heap prunes the oldest first) plus a running
count of tokens reserved by requests still in flight. Requests admitted within the same
``MERGE_S`` (10 ms) slot share one entry, which leaves the window 60 s after its *latest*
member: a request is counted at most 10 ms longer than 60 s, never shorter, so a limit is
never exceeded in any true 60 s window, and an account's window holds at most 6,000 entries
however high its rate (per request entries held 180,000 floats and tuples, ~27 MB, for one
key at 3,000 req/s). Requests seconds apart keep an entry each, exactly as before. A refusal's
``retry-after`` is the time until the window admits the request (rounded up by the error), and
the refusal carries ``x-ratelimit-*`` headers that agree with it.

The interface (mirrored by the Redis ledger): ``set_account`` / ``drop_account`` /
``has_account``; ``admit`` → ``Reservation`` → exactly one ``settle`` or ``release``;
``account`` / ``spend`` / ``ratelimit_headers`` reads; ``drain_dirty`` for the flusher.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from proxy.errors import BudgetExceeded, RateLimited
from proxy.ledger.durations import Duration, advance, next_reset, parse_duration
from proxy.ledger.windows import WINDOW_SECONDS, RequestWindow, TokenWindow

MONEY_UNIT = 1_000_000_000_000  # pico-dollars per dollar
MONEY_DIGITS = 12


def round_money(amount: float) -> float:
    """A dollar amount at the ledger's precision, as the shortest float for it."""
    return round(amount, MONEY_DIGITS)


def _units(amount: float) -> int:
    return round(amount * MONEY_UNIT)


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
        "budget_units",
        "duration",
        "id",
        "in_flight",
        "kind",
        "limits",
        "max_parallel",
        "reserved_tokens",
        "reserved_units",
        "rpm_limit",
        "rpm_window",
        "spend_units",
        "tpm_limit",
        "tpm_window",
    )

    def __init__(self, account_id: str) -> None:
        self.id = account_id
        kind, sep, _ = account_id.partition(":")
        self.kind = kind if sep and kind else "account"
        self.limits = Limits()
        self.duration: Duration | None = None
        # Copies of the limits, read on every admit without a second attribute hop.
        self.budget_units: int | None = None
        self.rpm_limit: int | None = None
        self.tpm_limit: int | None = None
        self.max_parallel: int | None = None
        self.spend_units = 0
        self.reserved_units = 0
        self.in_flight = 0
        self.budget_reset_at: float | None = None
        self.rpm_window = RequestWindow()
        self.tpm_window = TokenWindow()  # settled requests' tokens
        self.reserved_tokens = 0  # tokens reserved by requests in flight

    def apply_limits(self, limits: Limits, duration: Duration | None) -> None:
        self.limits = limits
        self.duration = duration
        self.budget_units = None if limits.max_budget is None else _units(limits.max_budget)
        self.rpm_limit = limits.rpm_limit
        self.tpm_limit = limits.tpm_limit
        self.max_parallel = limits.max_parallel_requests
        if limits.rpm_limit is None:
            self.rpm_window.clear()
        if limits.tpm_limit is None:
            self.tpm_window.clear()

    def tokens_used(self, now: float) -> int:
        return self.tpm_window.settled(now) + self.reserved_tokens


# Compiled (proxy/compiled.py); the Redis ledger's classes extend these two.
@mypyc_attr(allow_interpreted_subclasses=True)
class Reservation:
    """What ``admit`` reserved; hand it back to ``settle`` or ``release`` exactly once.

    ``output_cap`` is set when the budget only paid for a capped output: the request must be
    sent upstream with its output limit lowered to it.
    """

    __slots__ = (
        "_accounts",
        "_units",
        "cost",
        "output_cap",
        "request_id",
        "settled",
        "timestamp",
        "tokens",
    )

    def __init__(
        self,
        request_id: str,
        accounts: list[_Account],
        units: int,
        tokens: int,
        timestamp: float,
        output_cap: int | None = None,
    ) -> None:
        self.request_id = request_id
        self._accounts = accounts
        self.cost = units / MONEY_UNIT
        self._units = units
        self.tokens = tokens
        self.timestamp = timestamp
        self.output_cap = output_cap
        self.settled = False

    @property
    def account_ids(self) -> tuple[str, ...]:
        return tuple(account.id for account in self._accounts)

    def __repr__(self) -> str:
        return (
            f"Reservation(request_id={self.request_id!r}, accounts={len(self._accounts)}, "
            f"cost={self.cost!r}, tokens={self.tokens!r}, output_cap={self.output_cap!r}, "
            f"settled={self.settled!r})"
        )


@mypyc_attr(allow_interpreted_subclasses=True)
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
        ``budget_reset_at`` a budget duration that is new or changed starts now (its first
        reset is ``next_reset(duration, now)``), and the account is marked dirty so the
        flusher stores it. Raises ``ValueError`` for a bad ``budget_duration``, before
        changing anything.
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
            account.spend_units = _units(float(spend))
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

    def fits(self, account_ids: Sequence[str], cost: float) -> bool:
        """Whether ``cost`` fits every budget of ``account_ids`` as they stand (reserved
        included; a due reset is not applied, so a False may be pessimistic). Reads only: the
        admission path asks it before paying for a tighter prompt estimate."""
        units = _units(cost)
        get = self._accounts.get
        for account_id in account_ids:
            account = get(account_id)
            if account is None or account.budget_units is None:
                continue
            if account.budget_units - account.spend_units - account.reserved_units < units:
                return False
        return True

    def admit(
        self,
        request_id: str,
        account_ids: Sequence[str],
        *,
        tokens: int,
        cost: float,
        output_price: float = 0.0,
        max_output_tokens: int = 0,
        min_output_tokens: int = 1,
    ) -> Reservation:
        """Reserve ``tokens`` and worst-case ``cost`` on every known account, or on none.

        ``cost`` includes ``max_output_tokens`` of output at ``output_price`` dollars a token
        (both 0: the output cannot be capped). When the cost does not fit the tightest budget
        but the rest of it plus ``min_output_tokens`` of output does, the output is capped to
        the most that fits: ``Reservation.output_cap``, with the reserved cost lowered to match
        and ``tokens`` by ``max(0, min(max_output_tokens, tokens) - output_cap)``.

        Unknown ids are skipped. A due budget reset is applied first; then the budgets are
        checked, then per account max parallel requests, rpm and tpm. Raises
        ``BudgetExceeded`` or ``RateLimited`` naming the account's kind, leaving every
        account unreserved.
        """
        now = self._clock()
        units = _units(cost)
        accounts: list[_Account] = []
        tightest: _Account | None = None
        room = 0
        get = self._accounts.get
        for account_id in account_ids:
            account = get(account_id)
            if account is None or account in accounts:
                continue
            accounts.append(account)
            budget = account.budget_units
            if budget is None:
                continue
            reset_at = account.budget_reset_at
            if reset_at is not None and now >= reset_at:
                self._reset_budget(account, now)
            left = budget - account.spend_units - account.reserved_units
            if left < units and (tightest is None or left < room):
                tightest, room = account, left
        output_cap: int | None = None
        if tightest is not None:
            output_cap = _affordable(room, units, output_price, max_output_tokens)
            if output_cap is None or output_cap < max(min_output_tokens, 1):
                raise BudgetExceeded(
                    _refusal(
                        tightest, units, room, output_price, max_output_tokens, min_output_tokens
                    )
                )
            per_token = _units_per_token(output_price)
            capped = units - max_output_tokens * per_token + output_cap * per_token
            units = min(room, math.ceil(capped))
            # ``tokens`` may count less output than ``max_output_tokens`` (a request without
            # ``max_tokens`` reserves none for tpm): only output it counted is taken off.
            tokens -= max(0, min(max_output_tokens, tokens) - output_cap)
        for account in accounts:
            self._check_limits(account, now, tokens)
        # Every check passed: reserve on all of them (nothing below can raise).
        for account in accounts:
            account.in_flight += 1
            account.reserved_units += units
            account.reserved_tokens += tokens
            if account.rpm_limit is not None:
                account.rpm_window.record(now)
        return Reservation(request_id, accounts, units, tokens, now, output_cap)

    def _check_limits(self, account: _Account, now: float, tokens: int) -> None:
        limit = account.max_parallel
        if limit is not None and account.in_flight >= limit:
            raise RateLimited(
                f"Parallel request limit reached for {account.kind}: "
                f"{account.in_flight} in flight, max_parallel_requests {limit}",
                retry_after=1.0,
            )

        limit = account.rpm_limit
        if limit is not None:
            count = account.rpm_window.count(now)
            if count >= limit:
                wait = account.rpm_window.reset(now, limit)
                error = RateLimited(
                    f"Rate limit reached for {account.kind}: {count} requests in the "
                    f"last minute, rpm_limit {limit}",
                    retry_after=wait,
                )
                error.headers.update(
                    {
                        "x-ratelimit-limit-requests": str(limit),
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": error.headers["retry-after"] + "s",
                    }
                )
                raise error

        limit = account.tpm_limit
        if limit is not None:
            used = account.tokens_used(now)
            if used and used + tokens > limit:
                error = RateLimited(
                    f"Rate limit reached for {account.kind}: {used} tokens in the last minute "
                    f"+ this request's {tokens} > tpm_limit {limit}",
                    retry_after=account.tpm_window.retry_after(
                        used + tokens - limit, now, account.reserved_tokens
                    ),
                )
                error.headers.update(
                    {
                        "x-ratelimit-limit-tokens": str(limit),
                        "x-ratelimit-remaining-tokens": str(max(0, limit - used)),
                        "x-ratelimit-reset-tokens": error.headers["retry-after"] + "s",
                    }
                )
                raise error

    def _reset_budget(self, account: _Account, now: float) -> None:
        account.spend_units = 0
        duration = account.duration
        reset_at = account.budget_reset_at
        if duration is None:
            account.budget_reset_at = None
        elif reset_at is None:
            account.budget_reset_at = next_reset(duration, now)
        else:
            account.budget_reset_at = advance(duration, reset_at, now)
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
        units = _units(cost)
        for account in reservation._accounts:
            account.in_flight -= 1
            account.reserved_units -= reservation._units
            account.reserved_tokens -= reservation.tokens
            if units:
                account.spend_units += units
                self._dirty.add(account.id)
            if record_tokens and account.tpm_limit is not None:
                account.tpm_window.record(admitted_at, tokens)

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
            spend=account.spend_units / MONEY_UNIT,
            reserved=account.reserved_units / MONEY_UNIT,
            in_flight=account.in_flight,
            budget_reset_at=account.budget_reset_at,
            requests_in_window=account.rpm_window.count(now),
            tokens_in_window=account.tokens_used(now),
        )

    def spend(self, account_id: str) -> float | None:
        """The account's spend (None if unknown): the cheap read for response headers."""
        account = self._accounts.get(account_id)
        return None if account is None else account.spend_units / MONEY_UNIT

    def ratelimit_headers(self, account_id: str) -> dict[str, str]:
        """``x-ratelimit-*`` headers for the account's rpm and tpm limits ({} if neither).

        ``reset-*`` is the time until ``remaining-*`` next grows: when the window is full, until
        it admits a request again (the ``retry-after`` of a refusal), else until its oldest
        request (or settled tokens) leaves it.
        """
        account = self._accounts.get(account_id)
        if account is None:
            return {}
        return {name.decode(): value.decode() for name, value in self._limit_pairs(account)}

    def reply_view(self, account_id: str) -> tuple[float | None, list[tuple[bytes, bytes]]]:
        """What a reply's headers read, in one lookup: the account's spend (None if unknown)
        and its ``x-ratelimit-*`` header pairs, encoded."""
        account = self._accounts.get(account_id)
        if account is None:
            return None, []
        return account.spend_units / MONEY_UNIT, self._limit_pairs(account)

    def _limit_pairs(self, account: _Account) -> list[tuple[bytes, bytes]]:
        """The account's ``x-ratelimit-*`` pairs from its own windows (a shared ledger reads
        the windows its store reported instead)."""
        rpm, tpm = account.rpm_limit, account.tpm_limit
        if rpm is None and tpm is None:
            return []
        now = self._clock()
        pairs: list[tuple[bytes, bytes]] = []
        if rpm is not None:
            window = account.rpm_window
            pairs += request_pairs(rpm, window.count(now), window.reset(now, rpm))
        if tpm is not None:
            oldest = account.tpm_window.oldest()
            reset = 0.0 if oldest is None else oldest + WINDOW_SECONDS - now
            pairs += token_pairs(tpm, account.tokens_used(now), reset)
        return pairs

    def drain_dirty(self) -> list[tuple[str, float, float | None]]:
        """``(account_id, spend, budget_reset_at)`` for accounts changed since the last drain."""
        accounts = self._accounts
        changed = [
            (account_id, account.spend_units / MONEY_UNIT, account.budget_reset_at)
            for account_id in self._dirty
            if (account := accounts.get(account_id)) is not None
        ]
        self._dirty.clear()
        return changed

    def outstanding(self) -> tuple[int, float]:
        """Total requests in flight and total reserved cost over all accounts."""
        in_flight = 0
        units = 0
        for account in self._accounts.values():
            in_flight += account.in_flight
            units += account.reserved_units
        return in_flight, units / MONEY_UNIT


def _units_per_token(price: float) -> float:
    return price * MONEY_UNIT


def _affordable(room: int, units: int, output_price: float, max_output: int) -> int | None:
    """The most output tokens that fit ``room`` once the rest of the worst case is paid, or
    None when the output cannot be capped (no price, nothing to cap) or nothing fits."""
    if output_price <= 0 or max_output <= 0:
        return None
    per_token = _units_per_token(output_price)
    fixed = units - max_output * per_token
    if room < fixed:
        return None
    return min(max_output, math.floor((room - fixed) / per_token))


def _refusal(
    account: _Account,
    units: int,
    room: int,
    output_price: float,
    max_output: int,
    min_output: int,
) -> str:
    # LiteLLM's phrase first: clients and LiteLLM's own tests look for it.
    budget = account.budget_units or 0
    spent = f"spend {_money_units(account.spend_units)}"
    if account.reserved_units:
        spent += f" + in flight {_money_units(account.reserved_units)}"
    if output_price > 0 and max_output > 0 and min_output > 0:
        fixed = units - max_output * _units_per_token(output_price)
        smallest = fixed + min_output * _units_per_token(output_price)
        need = (
            f"at least {_money_units(math.ceil(smallest))} (with its output capped to "
            f"{min_output} tokens)"
        )
    else:
        need = f"up to {_money_units(units)}"
    return (
        f"Budget has been exceeded! This request would exceed the {account.kind} budget: it "
        f"needs {need} but {_money_units(max(room, 0))} remains of max_budget "
        f"{_money_units(budget)} ({spent})"
    )


def _money_units(units: int) -> str:
    return _money(units / MONEY_UNIT)


def _money(amount: float) -> str:
    # At least cents, and enough digits that sub-cent per-request costs stay visible.
    text = f"{amount:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _seconds_value(seconds: float) -> bytes:
    """A ``reset-*`` header value: whole seconds, rounded up, never negative."""
    return b"%ds" % max(0, math.ceil(seconds))


def request_pairs(limit: int, count: int, reset_s: float) -> tuple[tuple[bytes, bytes], ...]:
    """``x-ratelimit-*-requests``: the rpm limit, what remains of it, and when it grows."""
    return (
        (b"x-ratelimit-limit-requests", b"%d" % limit),
        (b"x-ratelimit-remaining-requests", b"%d" % max(0, limit - count)),
        (b"x-ratelimit-reset-requests", _seconds_value(reset_s)),
    )


def token_pairs(limit: int, used: int, reset_s: float) -> tuple[tuple[bytes, bytes], ...]:
    """``x-ratelimit-*-tokens``: the tpm limit, what remains of it, and when it grows."""
    return (
        (b"x-ratelimit-limit-tokens", b"%d" % limit),
        (b"x-ratelimit-remaining-tokens", b"%d" % max(0, limit - used)),
        (b"x-ratelimit-reset-tokens", _seconds_value(reset_s)),
    )
