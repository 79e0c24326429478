"""The capacity rule of one lending line, as pure code: claim, release, draw, restore."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fundrouter.domain.errors import DomainError
from fundrouter.domain.lines import (
    CounterUnderflow,
    CurrencyMismatch,
    DailyLimitReached,
    DrawExceedsReservation,
    InsufficientCapacity,
    Line,
    LineConfig,
    LineCounters,
    LinePaused,
    LineRefusal,
    LineStatus,
    OutsideValidityWindow,
    local_day,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.support.factories import line_config

# 16:00 in Shanghai, still 2026-11-24 there and in UTC.
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TODAY = "2026-11-24"


make_config = partial(line_config, limit=100_000, maxAmount=100_000, weight=60)


def make_line(
    *,
    reserved: int = 0,
    drawn: int = 0,
    daily_used: dict[str, int] | None = None,
    **config: Any,
) -> Line:
    counters = LineCounters(reserved=reserved, drawn=drawn, daily_used=daily_used or {})
    return Line("bank-a-consumer", make_config(**config), counters)


def rebuilt(line: Line) -> Line:
    """An equal line made from the values alone, to compare against after a refusal
    without sharing a single object with the line under test."""
    counters = line.counters
    return Line(
        line.line_id,
        LineConfig.model_validate(line.config.model_dump()),
        LineCounters(counters.reserved, counters.drawn, dict(counters.daily_used)),
    )


# ------------------------------------------------------------------ claim


def test_claim_reserves_the_amount_and_counts_it_against_today() -> None:
    line = make_line(reserved=1_000, drawn=2_000)

    claimed = line.claim(10_000, "CNY", NOW)

    assert claimed.counters.reserved == 11_000
    assert claimed.counters.drawn == 2_000
    assert claimed.counters.used_on(TODAY) == 10_000
    assert claimed.available == 100_000 - 11_000 - 2_000


def test_claim_returns_a_new_line_and_leaves_the_original_as_it_was() -> None:
    line = make_line()

    line.claim(10_000, "CNY", NOW)

    assert line == make_line()


def test_claim_of_exactly_what_is_left_succeeds() -> None:
    line = make_line(limit=30_000, reserved=10_000, drawn=10_000)

    claimed = line.claim(10_000, "CNY", NOW)

    assert claimed.available == 0


def test_claim_of_one_unit_more_than_is_left_is_rejected() -> None:
    line = make_line(limit=30_000, reserved=10_000, drawn=10_000)

    with pytest.raises(InsufficientCapacity):
        line.claim(10_001, "CNY", NOW)


def test_claim_is_rejected_when_line_has_too_little_left() -> None:
    line = make_line(limit=25_000, reserved=10_000, drawn=10_000)

    with pytest.raises(InsufficientCapacity) as refused:
        line.claim(10_000, "CNY", NOW)

    assert refused.value.reason == "insufficient capacity: available 5000 < amount 10000"
    assert refused.value.message == (
        "line bank-a-consumer: insufficient capacity: available 5000 < amount 10000"
    )
    assert (refused.value.available, refused.value.amount) == (5_000, 10_000)


def test_claim_is_rejected_when_an_operator_lowered_the_limit_below_what_is_held() -> None:
    line = make_line(limit=100_000, reserved=80_000, drawn=30_000)
    lowered = replace(line, config=make_config(limit=50_000))

    assert lowered.available == -60_000
    with pytest.raises(InsufficientCapacity, match="available -60000 < amount 1"):
        lowered.claim(1, "CNY", NOW)


def test_claim_is_rejected_when_the_daily_limit_would_be_exceeded() -> None:
    line = make_line(daily_limit=50_000, reserved=45_000, daily_used={TODAY: 45_000})

    with pytest.raises(DailyLimitReached) as refused:
        line.claim(10_000, "CNY", NOW)

    assert refused.value.reason == "daily limit reached: room 5000 on 2026-11-24 < amount 10000"


def test_claim_may_use_exactly_the_days_room_but_not_one_unit_more() -> None:
    line = make_line(daily_limit=50_000, reserved=45_000, daily_used={TODAY: 45_000})

    assert line.claim(5_000, "CNY", NOW).daily_room(TODAY) == 0
    with pytest.raises(DailyLimitReached):
        line.claim(5_001, "CNY", NOW)


def test_claim_ignores_yesterdays_usage_for_the_daily_limit() -> None:
    line = make_line(daily_limit=50_000, reserved=50_000, daily_used={"2026-11-23": 50_000})

    claimed = line.claim(50_000, "CNY", NOW)

    assert claimed.counters.used_on(TODAY) == 50_000
    assert claimed.counters.used_on("2026-11-23") == 50_000


def test_claim_without_daily_limit_still_records_todays_usage() -> None:
    line = make_line(daily_limit=None, daily_used={TODAY: 90_000})

    claimed = line.claim(10_000, "CNY", NOW)

    assert claimed.daily_room(TODAY) is None
    assert claimed.counters.used_on(TODAY) == 100_000


def test_claim_is_rejected_when_line_is_paused() -> None:
    line = make_line(status=LineStatus.PAUSED)

    with pytest.raises(LinePaused, match="line is PAUSED"):
        line.claim(10_000, "CNY", NOW)


def test_claim_is_rejected_before_the_line_opens() -> None:
    line = make_line(active_from=NOW + timedelta(milliseconds=1))

    with pytest.raises(OutsideValidityWindow) as refused:
        line.claim(10_000, "CNY", NOW)

    assert refused.value.reason == "outside validity window: opens 2026-11-24T08:00:00.001Z"


def test_claim_is_accepted_from_the_first_instant_of_the_window() -> None:
    line = make_line(active_from=NOW, active_until=NOW + timedelta(days=1))

    assert line.claim(10_000, "CNY", NOW).counters.reserved == 10_000


def test_claim_is_rejected_from_the_instant_the_window_ends() -> None:
    line = make_line(active_from=NOW - timedelta(days=1), active_until=NOW)

    with pytest.raises(OutsideValidityWindow) as refused:
        line.claim(10_000, "CNY", NOW)

    assert refused.value.reason == "outside validity window: ended 2026-11-24T08:00:00.000Z"


def test_claim_is_rejected_in_another_currency() -> None:
    line = make_line(currency="CNY")

    with pytest.raises(CurrencyMismatch) as refused:
        line.claim(10_000, "USD", NOW)

    assert refused.value.reason == "currency USD not offered (CNY)"


EXPIRED = NOW - timedelta(days=1)
FULL_TODAY: dict[str, Any] = {"daily_limit": 1_000, "daily_used": {TODAY: 1_000}}


@pytest.mark.parametrize(
    ("settings", "currency", "refusal"),
    [
        (
            {"status": "PAUSED", "active_until": EXPIRED, "limit": 1_000} | FULL_TODAY,
            "USD",
            LinePaused,
        ),
        ({"active_until": EXPIRED, "limit": 1_000} | FULL_TODAY, "USD", OutsideValidityWindow),
        ({"limit": 1_000} | FULL_TODAY, "USD", CurrencyMismatch),
        ({"limit": 1_000} | FULL_TODAY, "CNY", InsufficientCapacity),
        (FULL_TODAY, "CNY", DailyLimitReached),
    ],
)
def test_claim_reports_the_first_failed_check_in_a_fixed_order(
    settings: dict[str, Any], currency: str, refusal: type[LineRefusal]
) -> None:
    with pytest.raises(refusal):
        make_line(**settings).claim(10_000, currency, NOW)


@pytest.mark.parametrize("amount", [0, -1])
def test_claim_of_a_non_positive_amount_is_a_bug_not_a_refusal(amount: int) -> None:
    with pytest.raises(ValueError, match="amount must be positive"):
        make_line().claim(amount, "CNY", NOW)


def test_claim_needs_a_time_zone_aware_moment() -> None:
    with pytest.raises(ValueError, match="time zone"):
        make_line().claim(10_000, "CNY", datetime(2026, 11, 24, 8, 0))  # noqa: DTZ001


# ------------------------------------------------------------------ release


def test_release_gives_back_the_reservation_and_the_claim_days_usage() -> None:
    line = make_line(reserved=30_000, drawn=5_000, daily_used={TODAY: 30_000, "2026-11-23": 7})

    released = line.release(10_000, TODAY)

    assert released.counters.reserved == 20_000
    assert released.counters.drawn == 5_000
    assert released.counters.used_on(TODAY) == 20_000
    assert released.counters.used_on("2026-11-23") == 7


def test_release_after_claim_gives_back_an_equal_line() -> None:
    line = make_line(daily_limit=50_000, reserved=1_000, daily_used={"2026-11-23": 1_000})

    round_trip = line.claim(10_000, "CNY", NOW).release(10_000, TODAY)

    assert round_trip == line


def test_release_of_more_than_is_reserved_is_refused() -> None:
    line = make_line(reserved=5_000, daily_used={TODAY: 50_000})

    with pytest.raises(CounterUnderflow) as refused:
        line.release(10_000, TODAY)

    assert refused.value.reason == "counter underflow: reserved 5000 < amount 10000"


def test_release_of_more_than_the_claim_day_used_is_refused() -> None:
    line = make_line(reserved=50_000, daily_used={TODAY: 5_000})

    with pytest.raises(CounterUnderflow) as refused:
        line.release(10_000, TODAY)

    assert refused.value.reason == "counter underflow: used on 2026-11-24 5000 < amount 10000"


def test_release_needs_a_calendar_day() -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        make_line(reserved=10).release(10, "2026-11-31")


# ------------------------------------------------------------------ draw


def test_draw_moves_the_reservation_to_drawn() -> None:
    line = make_line(reserved=30_000, drawn=5_000, daily_used={TODAY: 30_000})

    drawn = line.draw(10_000, 10_000)

    assert (drawn.counters.reserved, drawn.counters.drawn) == (20_000, 15_000)
    assert drawn.available == line.available


def test_partial_draw_frees_the_rest_of_the_reservation() -> None:
    line = make_line(reserved=10_000)

    drawn = line.draw(10_000, 6_000)

    assert (drawn.counters.reserved, drawn.counters.drawn) == (0, 6_000)
    assert drawn.available == line.available + 4_000


def test_draw_keeps_the_days_usage_because_the_order_went_ahead() -> None:
    line = make_line(reserved=10_000, daily_used={TODAY: 10_000})

    assert line.draw(10_000, 6_000).counters.used_on(TODAY) == 10_000


def test_draw_above_the_reservation_is_refused() -> None:
    line = make_line(reserved=50_000)

    with pytest.raises(DrawExceedsReservation) as refused:
        line.draw(10_000, 10_001)

    assert refused.value.fields[0].field == "amount"
    assert refused.value.reason == "cannot draw 10001: above the reservation of 10000"


def test_draw_of_more_than_the_line_holds_reserved_is_refused() -> None:
    line = make_line(reserved=5_000)

    with pytest.raises(CounterUnderflow, match="reserved 5000 < amount 10000"):
        line.draw(10_000, 10_000)


# ------------------------------------------------------------------ restore


def test_restore_gives_repaid_principal_back_to_the_line() -> None:
    line = make_line(drawn=30_000)

    restored = line.restore(10_000)

    assert restored.counters.drawn == 20_000
    assert restored.available == line.available + 10_000


def test_restore_of_more_than_is_drawn_is_refused() -> None:
    line = make_line(drawn=5_000)

    with pytest.raises(CounterUnderflow, match="drawn 5000 < amount 10000"):
        line.restore(10_000)


# ------------------------------------------------------------------ errors and counters


def test_every_refusal_is_a_domain_error_with_its_own_code() -> None:
    kinds = [
        InsufficientCapacity,
        DailyLimitReached,
        LinePaused,
        OutsideValidityWindow,
        CurrencyMismatch,
        CounterUnderflow,
        DrawExceedsReservation,
    ]

    assert all(issubclass(kind, LineRefusal) and issubclass(kind, DomainError) for kind in kinds)
    assert len({kind.code for kind in kinds} | {DomainError.code, LineRefusal.code}) == 9


@pytest.mark.parametrize(
    "counters",
    [
        {"reserved": -1},
        {"drawn": -1},
        {"daily_used": {TODAY: -1}},
        {"daily_used": {"24/11/2026": 1}},
    ],
)
def test_counters_refuse_impossible_values(counters: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        LineCounters(**counters)


def test_counters_forget_days_without_usage_and_cannot_be_changed_in_place() -> None:
    counters = LineCounters(daily_used={TODAY: 0, "2026-11-23": 5})

    assert dict(counters.daily_used) == {"2026-11-23": 5}
    assert counters == LineCounters(daily_used={"2026-11-23": 5})
    with pytest.raises(TypeError):
        counters.daily_used[TODAY] = 1  # type: ignore[index]


# ------------------------------------------------------------------ local days


@pytest.mark.parametrize(
    ("moment", "zone", "day"),
    [
        (datetime(2026, 11, 24, 16, 30, tzinfo=UTC), "Asia/Shanghai", "2026-11-25"),
        (datetime(2026, 11, 24, 16, 30, tzinfo=UTC), "UTC", "2026-11-24"),
        (datetime(2026, 11, 24, 15, 59, 59, 999_000, tzinfo=UTC), "Asia/Shanghai", "2026-11-24"),
        (datetime(2026, 11, 24, 16, 0, tzinfo=UTC), "Asia/Shanghai", "2026-11-25"),
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), "America/New_York", "2026-11-24"),
        (datetime(2026, 11, 25, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), "UTC", "2026-11-24"),
    ],
)
def test_local_day_is_the_calendar_day_in_the_lines_time_zone(
    moment: datetime, zone: str, day: str
) -> None:
    assert local_day(make_config(timezone=zone), moment) == day


def test_daily_limit_starts_afresh_at_midnight_in_shanghai_not_utc() -> None:
    before_midnight = datetime(2026, 11, 24, 15, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)
    shanghai = make_line(daily_limit=10_000).claim(10_000, "CNY", before_midnight)

    next_day = shanghai.claim(10_000, "CNY", after_midnight)

    assert dict(next_day.counters.daily_used) == {"2026-11-24": 10_000, "2026-11-25": 10_000}


def test_daily_limit_of_a_utc_line_still_counts_the_same_day() -> None:
    before_midnight = datetime(2026, 11, 24, 15, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)
    utc_line = make_line(daily_limit=10_000, timezone="UTC").claim(10_000, "CNY", before_midnight)

    with pytest.raises(DailyLimitReached, match="room 0 on 2026-11-24"):
        utc_line.claim(10_000, "CNY", after_midnight)


# ------------------------------------------------------------------ properties

LIMIT = 10_000
DAILY_LIMIT = 4_000
START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
END = START + timedelta(days=5)
NEVER_USED_DAY = "2000-01-01"


class LineLifecycle(RuleBasedStateMachine):
    """Random sequences of every operation against a plain model of what the line must
    hold: the counters always agree with it, stay within bounds, and a refusal changes
    nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[int, str]] = []
        self.drawn = 0
        self.used: Counter[str] = Counter()
        self.now = START - timedelta(hours=6)
        self.zone = "Asia/Shanghai"
        self.line = make_line()

    @initialize(zone=st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York"]))
    def open_line(self, zone: str) -> None:
        self.zone = zone
        self.line = make_line(
            limit=LIMIT,
            daily_limit=DAILY_LIMIT,
            max_amount=LIMIT,
            active_from=START,
            active_until=END,
            timezone=zone,
        )

    def expected_refusal(self, amount: int, currency: str) -> type[LineRefusal] | None:
        if self.line.config.status is LineStatus.PAUSED:
            return LinePaused
        if not START <= self.now < END:
            return OutsideValidityWindow
        if currency != "CNY":
            return CurrencyMismatch
        if amount > LIMIT - sum(held for held, _ in self.held) - self.drawn:
            return InsufficientCapacity
        if amount > DAILY_LIMIT - self.used[self.today()]:
            return DailyLimitReached
        return None

    def today(self) -> str:
        return self.now.astimezone(ZoneInfo(self.zone)).date().isoformat()

    def assert_refused(self, operation: Any, refusal: type[LineRefusal]) -> None:
        before = rebuilt(self.line)
        with pytest.raises(refusal):
            operation(self.line)
        assert self.line == before

    @rule(amount=st.integers(1, 5_000), currency=st.sampled_from(["CNY", "CNY", "CNY", "USD"]))
    def claim(self, amount: int, currency: str) -> None:
        refusal = self.expected_refusal(amount, currency)
        if refusal is not None:
            self.assert_refused(lambda line: line.claim(amount, currency, self.now), refusal)
            return
        self.line = self.line.claim(amount, currency, self.now)
        self.held.append((amount, self.today()))
        self.used[self.today()] += amount

    @rule(edge=st.sampled_from(["overall", "today"]), offset=st.integers(-1, 1))
    def claim_at_the_edge(self, edge: str, offset: int) -> None:
        """Random amounts rarely land on the boundary; this rule aims at it."""
        left = LIMIT - sum(amount for amount, _ in self.held) - self.drawn
        if edge == "today":
            left = min(left, DAILY_LIMIT - self.used[self.today()])
        if left + offset > 0:
            self.claim(left + offset, "CNY")

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        amount, day = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        self.line = self.line.release(amount, day)
        self.used[day] -= amount

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def draw(self, data: st.DataObject) -> None:
        amount, _ = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        disbursed = data.draw(st.integers(1, amount))
        self.line = self.line.draw(amount, disbursed)
        self.drawn += disbursed

    @precondition(lambda self: self.drawn > 0)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        repaid = data.draw(st.integers(1, self.drawn))
        self.line = self.line.restore(repaid)
        self.drawn -= repaid

    @rule(excess=st.integers(1, 1_000))
    def release_more_than_reserved(self, excess: int) -> None:
        amount = self.line.counters.reserved + excess
        self.assert_refused(lambda line: line.release(amount, self.today()), CounterUnderflow)

    @precondition(lambda self: self.held)
    @rule()
    def release_on_a_day_without_that_usage(self) -> None:
        amount, _ = self.held[0]
        self.assert_refused(lambda line: line.release(amount, NEVER_USED_DAY), CounterUnderflow)

    @rule(excess=st.integers(1, 1_000))
    def draw_more_than_reserved(self, excess: int) -> None:
        amount = self.line.counters.reserved + excess
        self.assert_refused(lambda line: line.draw(amount, 1), CounterUnderflow)

    @rule(reservation=st.integers(1, 5_000), excess=st.integers(1, 1_000))
    def draw_above_the_reservation(self, reservation: int, excess: int) -> None:
        self.assert_refused(
            lambda line: line.draw(reservation, reservation + excess), DrawExceedsReservation
        )

    @rule(excess=st.integers(1, 1_000))
    def restore_more_than_drawn(self, excess: int) -> None:
        amount = self.line.counters.drawn + excess
        self.assert_refused(lambda line: line.restore(amount), CounterUnderflow)

    @rule()
    def pause_or_resume(self) -> None:
        paused = self.line.config.status is LineStatus.PAUSED
        status = LineStatus.ACTIVE if paused else LineStatus.PAUSED
        self.line = replace(
            self.line, config=self.line.config.model_copy(update={"status": status})
        )

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @invariant()
    def counters_agree_with_the_orders_held(self) -> None:
        counters = self.line.counters
        assert counters.reserved == sum(amount for amount, _ in self.held)
        assert counters.drawn == self.drawn
        assert dict(counters.daily_used) == {day: used for day, used in self.used.items() if used}

    @invariant()
    def nothing_is_over_allocated_or_negative(self) -> None:
        counters = self.line.counters
        assert counters.reserved >= 0
        assert counters.drawn >= 0
        assert counters.reserved + counters.drawn <= LIMIT
        assert self.line.available == LIMIT - counters.reserved - counters.drawn
        assert all(0 < used <= DAILY_LIMIT for used in counters.daily_used.values())


TestLineLifecycle = LineLifecycle.TestCase


@given(
    limit=st.integers(1, 10**15),
    reserved=st.integers(0, 10**15),
    drawn=st.integers(0, 10**15),
    amount=st.integers(1, 10**12),
)
def test_a_claim_either_fits_within_the_limit_or_changes_nothing(
    limit: int, reserved: int, drawn: int, amount: int
) -> None:
    line = make_line(limit=limit, reserved=reserved, drawn=drawn)
    before = rebuilt(line)

    try:
        claimed = line.claim(amount, "CNY", NOW)
    except InsufficientCapacity:
        assert amount > limit - reserved - drawn
        assert line == before
    else:
        assert claimed.counters.reserved + claimed.counters.drawn <= limit
        assert claimed.counters.reserved == reserved + amount
