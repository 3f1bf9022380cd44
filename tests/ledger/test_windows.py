"""The rpm and tpm windows stay bounded at any request rate (admissions within one
``MERGE_S`` slot share an entry) and never count a request for less than 60 s."""

from __future__ import annotations

import bisect
import random

from proxy.errors import RateLimited
from proxy.ledger.memory import Ledger, Limits
from proxy.ledger.windows import MERGE_S, WINDOW_SECONDS, TokenWindow
from tests.ledger import KEY, FakeClock


def test_a_hot_key_keeps_at_most_one_entry_per_slot_and_counts_every_request() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    ledger.set_account(KEY, Limits(rpm_limit=10**9, tpm_limit=10**12))
    start = clock.now
    # 3,000 requests a second for a minute: 180,000 admissions and settles.
    for i in range(180_000):
        clock.now = start + i / 3000
        ledger.settle(ledger.admit(f"r{i}", [KEY], tokens=10, cost=0.0), cost=0.0, tokens=7)
    account = ledger._accounts[KEY]
    slots = int(WINDOW_SECONDS / MERGE_S) + 2
    assert len(account.rpm_window.times) <= slots
    assert len(account.tpm_window.entries) <= slots
    state = ledger.account(KEY)
    # Everything admitted in the last 60 s is counted, however it is grouped.
    assert state.requests_in_window == 180_000
    assert state.tokens_in_window == 180_000 * 7
    headers = ledger.ratelimit_headers(KEY)
    assert headers["x-ratelimit-remaining-requests"] == str(10**9 - 180_000)


def test_a_limit_is_never_exceeded_in_any_sliding_minute() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    limit = 50
    ledger.set_account(KEY, Limits(rpm_limit=limit))
    admitted: list[float] = []
    now = clock.now
    for i in range(20_000):
        # Bursts within one slot and gaps of up to a few seconds.
        now += rng.choice((0.0, 0.001, 0.004, 0.02, 0.3, 1.7, 4.0))
        clock.now = now
        try:
            ledger.release(ledger.admit(f"r{i}", [KEY], tokens=1, cost=0.0))
        except RateLimited as refused:
            # The wait it names really is when the window has room (not before).
            assert refused.retry_after > 0
            continue
        admitted.append(now)
    assert len(admitted) > 1000
    for index, at in enumerate(admitted):
        first = bisect.bisect_right(admitted, at - WINDOW_SECONDS)
        assert index + 1 - first <= limit  # requests in (at - 60, at]


def test_a_merged_entry_leaves_with_its_latest_member_never_earlier() -> None:
    clock = FakeClock(1_700_000_000.0)
    ledger = Ledger(clock=clock)
    ledger.set_account(KEY, Limits(rpm_limit=2))
    start = clock.now
    ledger.admit("a", [KEY], tokens=1, cost=0.0)
    clock.now = start + MERGE_S / 2  # same slot: one entry, two requests
    ledger.admit("b", [KEY], tokens=1, cost=0.0)
    assert len(ledger._accounts[KEY].rpm_window.times) == 1
    # 60 s after the first but not after the second: both still counted.
    clock.now = start + WINDOW_SECONDS + MERGE_S / 4
    try:
        ledger.admit("c", [KEY], tokens=1, cost=0.0)
    except RateLimited as refused:
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    else:
        raise AssertionError("admitted while two requests of the last minute were counted")
    clock.now = start + WINDOW_SECONDS + MERGE_S / 2
    ledger.admit("d", [KEY], tokens=1, cost=0.0)


def test_settles_out_of_admission_order_count_like_a_list_of_every_settle() -> None:
    rng = random.Random(11)
    window = TokenWindow()
    settles: list[tuple[float, int]] = []
    start = 1_700_000_000.0
    for step in range(12_000):
        now = start + step * 0.004
        # Requests settle up to 90 s after their admission, in any order.
        admitted_at = now - rng.choice((0.0, 0.003, 0.05, 1.5, 20.0, 59.99, 75.0, 90.0))
        tokens = rng.randint(1, 500)
        window.record(admitted_at, tokens)
        settles.append((admitted_at, tokens))
        if step % 997 == 996:
            # A slot's settles leave together, 60 s after the latest of them.
            latest: dict[int, float] = {}
            for at, _ in settles:
                slot = int(at / MERGE_S)
                latest[slot] = max(at, latest.get(slot, at))
            live = [
                (at, n) for at, n in settles if latest[int(at / MERGE_S)] > now - WINDOW_SECONDS
            ]
            assert window.settled(now) == sum(n for _, n in live)
            oldest = window.oldest()
            # The oldest entry is its slot's latest admission: never earlier than the
            # oldest request still counted, and within one slot of it.
            first = min(at for at, _ in live)
            assert oldest is not None and first <= oldest < (int(first / MERGE_S) + 1) * MERGE_S
            # A request needing 1,000 more tokens waits until the oldest ones leave.
            wait = window.retry_after(1000, now, reserved=0)
            freed = sum(n for at, n in live if at + WINDOW_SECONDS - now <= wait + MERGE_S)
            assert freed >= 1000 or freed == window.total
    assert len(window.entries) <= int(WINDOW_SECONDS / MERGE_S) + 2
    later = start + 12_000 * 0.004 + WINDOW_SECONDS + 1
    assert window.settled(later) == 0
    assert not window.entries and window.oldest() is None
