import random
from datetime import UTC, datetime

import pytest

from proxy.errors import BudgetExceeded, RateLimited
from proxy.ledger.memory import Ledger, Limits, Reservation
from tests.ledger import KEY, FakeClock

OTHER_KEY = "key:60303ae22b998861bce3b28f33eec1be"
USER = "user:alice"
TEAM = "team:research"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock) -> Ledger:
    return Ledger(clock=clock)


@pytest.mark.parametrize(
    ("budget", "cost", "admitted"),
    [
        pytest.param(1.0, 0.1, 10, id="tenths"),
        pytest.param(1.0, 0.3, 3, id="thirds"),
        pytest.param(0.5, 0.07, 7, id="cents"),
        pytest.param(10.0, 2.5, 4, id="exact-fit"),
        pytest.param(0.3, 0.1, 3, id="float-dust-still-fits"),
    ],
)
def test_budget_admits_exactly_k_reservations_then_rejects(
    ledger: Ledger, budget: float, cost: float, admitted: int
) -> None:
    ledger.set_account(KEY, Limits(max_budget=budget))
    for i in range(admitted):
        ledger.admit(f"r{i}", [KEY], tokens=10, cost=cost)

    with pytest.raises(BudgetExceeded) as info:
        ledger.admit("one-too-many", [KEY], tokens=10, cost=cost)

    assert info.value.status == 429
    assert info.value.headers == {"x-should-retry": "false"}
    assert info.value.param is None
    state = ledger.account(KEY)
    assert state.in_flight == admitted
    assert state.reserved == pytest.approx(admitted * cost)


def test_settled_spend_counts_against_the_budget(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0))
    for i in range(4):
        reservation = ledger.admit(f"r{i}", [KEY], tokens=10, cost=0.25)
        ledger.settle(reservation, cost=0.25, tokens=10)

    with pytest.raises(
        BudgetExceeded,
        match=r"needs up to 0\.01 but 0\.00 remains of max_budget 1\.00 \(spend 1\.00\)",
    ):
        ledger.admit("r5", [KEY], tokens=10, cost=0.01)
    assert ledger.account(KEY).spend == pytest.approx(1.0)


def test_team_budget_is_shared_by_two_keys(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits())
    ledger.set_account(OTHER_KEY, Limits())
    ledger.set_account(TEAM, Limits(max_budget=1.0))
    first = ledger.admit("a", [KEY, TEAM], tokens=1, cost=0.6)

    with pytest.raises(
        BudgetExceeded,
        match=r"^Budget has been exceeded! This request would exceed the team budget",
    ):
        ledger.admit("b", [OTHER_KEY, TEAM], tokens=1, cost=0.6)
    ledger.admit("c", [OTHER_KEY, TEAM], tokens=1, cost=0.4)

    ledger.settle(first, cost=0.5, tokens=1)
    assert ledger.account(TEAM).spend == 0.5
    assert ledger.account(TEAM).reserved == 0.4
    assert ledger.account(KEY).spend == 0.5
    assert ledger.account(OTHER_KEY).spend == 0.0


@pytest.mark.parametrize(
    ("budgets", "level"),
    [
        pytest.param({KEY: 0.5, USER: 5.0, TEAM: 50.0}, "key", id="key-tightest"),
        pytest.param({KEY: 5.0, USER: 0.5, TEAM: 50.0}, "user", id="user-tightest"),
        pytest.param({KEY: 5.0, USER: 50.0, TEAM: 0.5}, "team", id="team-tightest"),
        pytest.param({KEY: None, USER: None, TEAM: 0.5}, "team", id="only-team-limited"),
    ],
)
def test_tightest_budget_wins_and_the_message_names_its_level(
    ledger: Ledger, budgets: dict[str, float | None], level: str
) -> None:
    for account_id, budget in budgets.items():
        ledger.set_account(account_id, Limits(max_budget=budget))
    ledger.admit("fits", [KEY, USER, TEAM], tokens=1, cost=0.5)

    with pytest.raises(BudgetExceeded) as info:
        ledger.admit("over", [KEY, USER, TEAM], tokens=1, cost=0.01)

    assert info.value.message == (
        "Budget has been exceeded! This request would exceed the "
        f"{level} budget: it needs up to 0.01 but 0.00 remains of max_budget 0.50 "
        "(spend 0.00 + in flight 0.50)"
    )
    assert KEY.partition(":")[2] not in info.value.message


def test_rejection_at_team_leaves_key_and_user_untouched(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=10.0, rpm_limit=1, tpm_limit=100))
    ledger.set_account(USER, Limits(max_parallel_requests=1))
    ledger.set_account(TEAM, Limits(max_budget=0.1))

    with pytest.raises(BudgetExceeded, match="the team budget"):
        ledger.admit("r", [KEY, USER, TEAM], tokens=50, cost=0.2)

    for account_id in (KEY, USER):
        state = ledger.account(account_id)
        assert (state.in_flight, state.reserved, state.spend) == (0, 0.0, 0.0)
        assert (state.requests_in_window, state.tokens_in_window) == (0, 0)
    assert ledger.outstanding() == (0, 0.0)
    # The key's single request per minute and the user's single slot are still free.
    ledger.admit("r2", [KEY, USER, TEAM], tokens=50, cost=0.1)


def test_unknown_accounts_are_ignored(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0))

    reservation = ledger.admit("r", ["user:nobody", KEY, "team:nobody"], tokens=5, cost=0.2)

    assert reservation.account_ids == (KEY,)
    assert (reservation.request_id, reservation.cost, reservation.tokens) == ("r", 0.2, 5)
    assert not ledger.has_account("user:nobody")
    assert ledger.outstanding() == (1, 0.2)


def test_settle_replaces_the_reservation_with_actual_cost(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0))
    ledger.set_account(TEAM, Limits(max_budget=2.0))
    reservation = ledger.admit("r", [KEY, TEAM], tokens=100, cost=0.5)
    assert ledger.account(KEY).reserved == 0.5

    ledger.settle(reservation, cost=0.2, tokens=40)

    for account_id in (KEY, TEAM):
        state = ledger.account(account_id)
        assert (state.spend, state.reserved, state.in_flight) == (0.2, 0.0, 0)
    assert reservation.settled


def test_settle_bills_actual_cost_even_above_the_reservation(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0))
    reservation = ledger.admit("r", [KEY], tokens=100, cost=0.5)

    ledger.settle(reservation, cost=0.7, tokens=140)

    assert ledger.account(KEY).spend == 0.7
    with pytest.raises(BudgetExceeded):
        ledger.admit("r2", [KEY], tokens=100, cost=0.5)


def test_settle_is_idempotent(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0, max_parallel_requests=2, tpm_limit=1000))
    reservation = ledger.admit("r", [KEY], tokens=100, cost=0.5)

    ledger.settle(reservation, cost=0.3, tokens=80)
    ledger.settle(reservation, cost=0.3, tokens=80)
    ledger.release(reservation)

    state = ledger.account(KEY)
    assert (state.spend, state.reserved, state.in_flight, state.tokens_in_window) == (
        0.3,
        0.0,
        0,
        80,
    )
    assert ledger.outstanding() == (0, 0.0)


def test_release_frees_everything_and_bills_nothing(ledger: Ledger, clock: FakeClock) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0, max_parallel_requests=1, tpm_limit=100))
    ledger.drain_dirty()
    reservation = ledger.admit("r", [KEY], tokens=100, cost=1.0)

    ledger.release(reservation)

    state = ledger.account(KEY)
    assert (state.spend, state.reserved, state.in_flight, state.tokens_in_window) == (
        0.0,
        0.0,
        0,
        0,
    )
    assert ledger.drain_dirty() == []
    ledger.admit("again", [KEY], tokens=100, cost=1.0)


def test_reserved_returns_exactly_to_its_prior_value(ledger: Ledger) -> None:
    ledger.set_account(TEAM, Limits(max_budget=1000.0))
    long_running = ledger.admit("stream", [TEAM], tokens=1, cost=0.3)
    pending: list[Reservation] = []
    rng = random.Random(3)
    for i in range(2000):
        if pending and rng.random() < 0.5:
            ledger.settle(pending.pop(rng.randrange(len(pending))), cost=0.0001, tokens=1)
        else:
            pending.append(ledger.admit(f"r{i}", [TEAM], tokens=1, cost=rng.uniform(0, 0.07)))
    for reservation in pending:
        ledger.release(reservation)

    assert ledger.account(TEAM).reserved == 0.3
    ledger.release(long_running)
    assert ledger.account(TEAM).reserved == 0.0


def test_rpm_admits_exactly_n_per_window_and_slides(ledger: Ledger, clock: FakeClock) -> None:
    ledger.set_account(KEY, Limits(rpm_limit=3))
    start = clock.now
    for offset in (0, 10, 20):
        clock.now = start + offset
        ledger.release(ledger.admit(f"r{offset}", [KEY], tokens=1, cost=0.0))

    clock.now = start + 30
    with pytest.raises(RateLimited) as info:
        ledger.admit("r30", [KEY], tokens=1, cost=0.0)
    assert info.value.retry_after == 30.0
    assert info.value.headers == {
        "retry-after": "30",
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "30s",
    }
    assert "rpm_limit 3" in info.value.message
    assert KEY.partition(":")[2] not in info.value.message

    clock.now = start + 59.999
    with pytest.raises(RateLimited):
        ledger.admit("r59", [KEY], tokens=1, cost=0.0)

    clock.now = start + 60  # the request at +0 leaves the window
    ledger.admit("r60", [KEY], tokens=1, cost=0.0)
    with pytest.raises(RateLimited) as info:
        ledger.admit("r60b", [KEY], tokens=1, cost=0.0)
    assert info.value.retry_after == 10.0  # the request at +10 is now the oldest
    assert ledger.account(KEY).requests_in_window == 3


def test_tpm_counts_reserved_tokens_then_actual(ledger: Ledger, clock: FakeClock) -> None:
    ledger.set_account(KEY, Limits(tpm_limit=1000))
    start = clock.now
    first = ledger.admit("a", [KEY], tokens=600, cost=0.0)

    with pytest.raises(RateLimited, match="600 tokens in the last minute"):
        ledger.admit("b", [KEY], tokens=500, cost=0.0)
    second = ledger.admit("c", [KEY], tokens=400, cost=0.0)
    assert ledger.account(KEY).tokens_in_window == 1000

    clock.now = start + 5
    ledger.settle(first, cost=0.0, tokens=100)  # actual replaces the 600 reserved
    assert ledger.account(KEY).tokens_in_window == 500
    third = ledger.admit("d", [KEY], tokens=500, cost=0.0)
    ledger.settle(third, cost=0.0, tokens=500)

    # Settled tokens stay in the window until 60 s after their admission, not after settle.
    clock.now = start + 60
    assert ledger.account(KEY).tokens_in_window == 400 + 500
    clock.now = start + 65
    assert ledger.account(KEY).tokens_in_window == 400  # still in flight: still counted
    ledger.settle(second, cost=0.0, tokens=300)
    assert ledger.account(KEY).tokens_in_window == 0  # admitted at start: already outside


def test_tpm_retry_after_waits_for_enough_settled_tokens(ledger: Ledger, clock: FakeClock) -> None:
    ledger.set_account(KEY, Limits(tpm_limit=1000))
    start = clock.now
    for offset, tokens in ((0, 300), (10, 300), (20, 300)):
        clock.now = start + offset
        ledger.settle(
            ledger.admit(f"r{offset}", [KEY], tokens=tokens, cost=0.0), cost=0.0, tokens=tokens
        )

    clock.now = start + 30
    with pytest.raises(RateLimited) as info:
        ledger.admit("big", [KEY], tokens=600, cost=0.0)  # needs 500 freed: two entries
    assert info.value.retry_after == 40.0


def test_tpm_admits_one_large_request_into_an_empty_window(
    ledger: Ledger, clock: FakeClock
) -> None:
    ledger.set_account(KEY, Limits(tpm_limit=1000))
    start = clock.now
    big = ledger.admit("big", [KEY], tokens=5000, cost=0.0)

    with pytest.raises(RateLimited) as info:
        ledger.admit("small", [KEY], tokens=1, cost=0.0)
    assert info.value.retry_after == 1.0  # blocked only by an in-flight reservation

    clock.now = start + 20
    ledger.settle(big, cost=0.0, tokens=4000)
    with pytest.raises(RateLimited) as info:
        ledger.admit("small", [KEY], tokens=1, cost=0.0)
    assert info.value.retry_after == 40.0

    clock.now = start + 60
    ledger.admit("small", [KEY], tokens=1, cost=0.0)


def test_parallel_limit_and_release_frees_a_slot(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_parallel_requests=2))
    first = ledger.admit("a", [KEY], tokens=1, cost=0.0)
    ledger.admit("b", [KEY], tokens=1, cost=0.0)

    with pytest.raises(RateLimited, match="max_parallel_requests 2") as info:
        ledger.admit("c", [KEY], tokens=1, cost=0.0)
    assert info.value.retry_after == 1.0

    ledger.release(first)
    ledger.admit("c", [KEY], tokens=1, cost=0.0)
    assert ledger.account(KEY).in_flight == 2


def test_budget_resets_at_the_boundary_and_drain_dirty_reports_it(
    ledger: Ledger, clock: FakeClock
) -> None:
    midnight = datetime(2024, 5, 16, tzinfo=UTC).timestamp()
    clock.now = midnight - 3600
    ledger.set_account(
        KEY, Limits(max_budget=1.0, budget_duration="1d"), spend=0.9, budget_reset_at=midnight
    )
    assert ledger.drain_dirty() == []  # restored state is already stored
    with pytest.raises(BudgetExceeded):
        ledger.admit("r", [KEY], tokens=1, cost=0.2)

    clock.now = midnight
    reservation = ledger.admit("r", [KEY], tokens=1, cost=0.2)

    next_midnight = midnight + 86400
    assert ledger.drain_dirty() == [(KEY, 0.0, next_midnight)]
    ledger.settle(reservation, cost=0.15, tokens=1)
    assert ledger.drain_dirty() == [(KEY, 0.15, next_midnight)]
    assert ledger.drain_dirty() == []


def test_new_budget_duration_gets_a_reset_time_and_is_flushed(
    ledger: Ledger, clock: FakeClock
) -> None:
    clock.now = datetime(2024, 12, 15, 10, tzinfo=UTC).timestamp()
    new_year = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    ledger.set_account(KEY, Limits(max_budget=5.0, budget_duration="1mo@calendar"))

    assert ledger.account(KEY).budget_reset_at == new_year
    assert ledger.drain_dirty() == [(KEY, 0.0, new_year)]
    ledger.set_account(KEY, Limits(max_budget=6.0, budget_duration="1mo@calendar"))
    assert ledger.drain_dirty() == []  # same duration: the schedule is kept
    ledger.set_account(KEY, Limits(max_budget=6.0))
    assert ledger.account(KEY).budget_reset_at is None


def test_bad_budget_duration_is_rejected_before_any_change(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="invalid budget_duration"):
        ledger.set_account(KEY, Limits(max_budget=1.0, budget_duration="1y"))
    assert not ledger.has_account(KEY)


def test_updating_limits_keeps_live_state(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0, rpm_limit=5), spend=0.5)
    reservation = ledger.admit("r", [KEY], tokens=10, cost=0.4)

    ledger.set_account(KEY, Limits(max_budget=2.0, rpm_limit=5))

    state = ledger.account(KEY)
    assert (state.spend, state.reserved, state.in_flight, state.requests_in_window) == (
        0.5,
        0.4,
        1,
        1,
    )
    assert state.limits.max_budget == 2.0
    ledger.settle(reservation, cost=0.4, tokens=10)
    assert ledger.account(KEY).spend == 0.9
    ledger.set_account(KEY, Limits(), spend=0.0)
    assert ledger.account(KEY).spend == 0.0


def test_dropped_account_settles_without_leaking(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=1.0))
    ledger.set_account(TEAM, Limits(max_budget=1.0))
    reservation = ledger.admit("r", [KEY, TEAM], tokens=1, cost=0.5)

    ledger.drop_account(KEY)
    ledger.settle(reservation, cost=0.5, tokens=1)

    assert not ledger.has_account(KEY)
    assert ledger.outstanding() == (0, 0.0)
    assert ledger.drain_dirty() == [(TEAM, 0.5, None)]
    with pytest.raises(KeyError):
        ledger.account(KEY)


def test_ratelimit_headers(ledger: Ledger, clock: FakeClock) -> None:
    ledger.set_account(KEY, Limits(rpm_limit=10, tpm_limit=1000))
    ledger.set_account(TEAM, Limits(max_budget=1.0))
    start = clock.now
    ledger.settle(ledger.admit("a", [KEY], tokens=300, cost=0.0), cost=0.0, tokens=250)
    clock.now = start + 12.5
    ledger.admit("b", [KEY], tokens=100, cost=0.0)

    assert ledger.ratelimit_headers(KEY) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "8",
        "x-ratelimit-reset-requests": "48s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "650",
        "x-ratelimit-reset-tokens": "48s",
    }
    assert ledger.ratelimit_headers(TEAM) == {}
    assert ledger.ratelimit_headers("key:unknown") == {}


def test_no_leaks_after_thousands_of_random_operations(ledger: Ledger, clock: FakeClock) -> None:
    budgets = {"key:a": 3.0, "key:b": 2.0, "key:c": None, "user:u": 4.0, "team:t": 6.0}
    ledger.set_account("key:a", Limits(max_budget=3.0, rpm_limit=40, max_parallel_requests=4))
    ledger.set_account("key:b", Limits(max_budget=2.0, tpm_limit=2000))
    ledger.set_account("key:c", Limits(max_parallel_requests=3))
    ledger.set_account("user:u", Limits(max_budget=4.0, tpm_limit=5000))
    ledger.set_account("team:t", Limits(max_budget=6.0, rpm_limit=100))
    paths = [["key:a", "user:u", "team:t"], ["key:b", "user:u", "team:t"], ["key:c", "team:t"]]
    rng = random.Random(20240515)
    pending: list[Reservation] = []
    finished: list[Reservation] = []
    outcomes = {"admitted": 0, "rate_limited": 0, "over_budget": 0}

    for i in range(6000):
        clock.now += rng.uniform(0, 0.5)
        roll = rng.random()
        if roll < 0.5 or not pending:
            try:
                reservation = ledger.admit(
                    f"r{i}",
                    rng.choice(paths),
                    tokens=rng.randint(0, 800),
                    cost=rng.choice([0.0, 0.001, 0.01, 0.05, 0.2]),
                )
            except RateLimited:
                outcomes["rate_limited"] += 1
                continue
            except BudgetExceeded:
                outcomes["over_budget"] += 1
                continue
            outcomes["admitted"] += 1
            pending.append(reservation)
            continue
        reservation = pending.pop(rng.randrange(len(pending)))
        if roll < 0.8:
            ledger.settle(
                reservation,
                cost=reservation.cost * rng.random(),
                tokens=rng.randint(0, reservation.tokens),
            )
        elif roll < 0.95:
            ledger.release(reservation)
        else:
            finished.append(reservation)
            ledger.settle(reservation, cost=reservation.cost, tokens=reservation.tokens)
        if finished and rng.random() < 0.1:
            ledger.settle(rng.choice(finished), cost=1.0, tokens=1000)  # a late duplicate
        for account_id, budget in budgets.items():
            state = ledger.account(account_id)
            assert state.in_flight >= 0
            if budget is not None:
                assert state.spend + state.reserved <= budget + 1e-9

    assert all(count > 100 for count in outcomes.values()), outcomes
    assert ledger.outstanding()[0] == len(pending) * 2 + sum(
        1 for r in pending if len(r.account_ids) == 3
    )
    for reservation in pending:
        ledger.release(reservation)
    assert ledger.outstanding() == (0, 0.0)
    clock.now += 60
    for account_id in budgets:
        state = ledger.account(account_id)
        assert (state.in_flight, state.reserved) == (0, 0.0)
        assert (state.requests_in_window, state.tokens_in_window) == (0, 0)


def test_sub_cent_costs_accumulate_and_show_in_messages(ledger: Ledger) -> None:
    ledger.set_account(KEY, Limits(max_budget=0.02))
    for i in range(1000):
        reservation = ledger.admit(f"r{i}", [KEY], tokens=10, cost=0.00002)
        ledger.settle(reservation, cost=0.00002, tokens=10)

    assert ledger.account(KEY).spend == pytest.approx(0.02)
    with pytest.raises(
        BudgetExceeded,
        match=r"needs up to 0\.000025 but 0\.00 remains of max_budget 0\.02 \(spend 0\.02\)$",
    ):
        ledger.admit("over", [KEY], tokens=10, cost=0.000025)
