"""The matcher's ranking-and-claim loop (MatchService, LineCatalog) with the fakes of
tests/support/fakes.py: an in-memory line source and a match store built on the pure
Line model, whose claim re-checks what the DynamoDB transaction's conditions check.
Tests script what other writers do between the catalog's read and the claim (another
claim landing, an operator changing a line, another delivery moving the order)."""

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from fundrouter.domain.errors import DomainError
from fundrouter.domain.lines import (
    LineCounters,
    StaleLineConfig,
)
from fundrouter.domain.orders import (
    Candidate,
    Decision,
    Order,
    OrderStatus,
)
from fundrouter.domain.routing import (
    DEFAULT_POLICY,
    OrderFacts,
    RoutingPolicy,
    Strategy,
    evaluate,
)
from fundrouter.service.matching import (
    LineCatalog,
    MatchOutcome,
    MatchReport,
    MatchService,
)
from fundrouter.service.ports import ClaimAttempt, ClaimResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import factories
from tests.support.factories import order_request
from tests.support.fakes import FakeLineSource, FakeMatchStore, Timer

# 16:00 in Shanghai, where the lines count their days: 2026-11-24.
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TODAY = "2026-11-24"
TENANT = "tenant-a"
AMOUNT = 1_250_000
TTL = 5.0

# ------------------------------------------------------------------- factories


# A line that takes any CNY order from 10,000 to 5,000,000, unless told otherwise.
line_config = partial(factories.line_config, minAmount=10_000)


def received_order(
    order_id: str = "shop-1",
    *,
    amount: int = AMOUNT,
    tenant_id: str = TENANT,
    declined: list[str] | None = None,
) -> Order:
    request = order_request(orderId=order_id, amount=amount, metadata={})
    order = Order.received(tenant_id, request, NOW)
    if declined:
        # Re-queued after a decline: back in RECEIVED at a later version.
        order = order.model_copy(update={"declined_line_ids": declined, "version": 3})
    return order


@pytest.fixture
def store() -> FakeMatchStore:
    return FakeMatchStore(NOW, TODAY, line_config)


@pytest.fixture
def source(store: FakeMatchStore) -> FakeLineSource:
    return FakeLineSource(store)


@pytest.fixture
def monotonic() -> Timer:
    return Timer()


@pytest.fixture
def catalog(source: FakeLineSource, monotonic: Timer) -> LineCatalog:
    return LineCatalog(source, ttl_seconds=TTL, monotonic=monotonic)


@pytest.fixture
def service(catalog: LineCatalog, store: FakeMatchStore) -> MatchService:
    return MatchService(catalog, store, lambda: NOW)


@pytest.fixture
def receive(store: FakeMatchStore) -> Callable[..., Order]:
    """Store a RECEIVED order, as intake had done, and return it as the stream shows it."""

    def make(order_id: str = "shop-1", **changes: Any) -> Order:
        return store.add_order(received_order(order_id, **changes))

    return make


def entries(candidates: list[Candidate]) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.line_id, c.outcome, c.code, c.reason) for c in candidates]


def decision_of(
    store: FakeMatchStore, order: Order
) -> list[tuple[str, str, str | None, str | None]]:
    decision = store.stored(order).decision
    assert decision is not None
    return entries(decision.candidates)


def claimed_lines(store: FakeMatchStore) -> list[str]:
    return [call.line_id for call in store.claims]


def refused(code: str, reason: str, line_id: str) -> tuple[str, str, str | None, str | None]:
    return (line_id, "REFUSED", code, reason)


INSUFFICIENT = "insufficient capacity: available 500000 < amount 1250000"
DAILY = "daily limit reached: room 250000 on 2026-11-24 < amount 1250000"


# ------------------------------------------------------------- the claim loop


def test_the_first_ranked_line_with_room_is_claimed_with_one_claim(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    # Given three lines with room, ranked unlike their ids, and two that cannot take it
    store.put_line("c-first", priority=1)
    store.put_line("a-second", priority=2)
    store.put_line("b-third", priority=3)
    store.put_line("d-paused", priority=0, status="PAUSED")
    store.put_line("e-small", priority=0, max_amount=1_000_000)
    order = receive()

    # When the order is matched
    report = service.match(order)

    # Then the best line is claimed in one call, and the decision says why
    assert (report.outcome, report.line_id, report.attempts) == (
        MatchOutcome.MATCHED,
        "c-first",
        1,
    )
    assert claimed_lines(store) == ["c-first"]
    assert store.unmatched == []
    assert decision_of(store, order) == [
        ("c-first", "CLAIMED", None, None),
        ("a-second", "ELIGIBLE", None, None),
        ("b-third", "ELIGIBLE", None, None),
        ("d-paused", "INELIGIBLE", "LINE_PAUSED", "line is PAUSED"),
        ("e-small", "INELIGIBLE", "AMOUNT_ABOVE_MAX", "amount above maxAmount 1000000"),
    ]
    matched = store.stored(order)
    assert matched.status is OrderStatus.MATCHED
    assert (matched.line_id, matched.funder_id, matched.reserved) == ("c-first", "bank-a", AMOUNT)
    assert matched.hold_expires_at == NOW + timedelta(seconds=900)
    assert matched.claim_day == TODAY
    assert store.claims[0].hold_expires_at == NOW + timedelta(seconds=900)
    assert store.line("c-first").counters == LineCounters(AMOUNT, 0, {TODAY: AMOUNT})
    assert store.records["c-first"].matched_total == AMOUNT
    assert all(store.line(i).counters == LineCounters() for i in ("a-second", "b-third"))


def test_the_report_of_a_match_lists_the_candidates_as_the_stored_decision_does(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()

    report = service.match(order)

    assert entries(report.candidates) == decision_of(store, order)


@pytest.mark.parametrize(
    ("first_line", "taken", "code", "reason"),
    [
        pytest.param(
            {"limit": 2_000_000}, 1_500_000, "INSUFFICIENT_CAPACITY", INSUFFICIENT, id="limit"
        ),
        pytest.param(
            {"daily_limit": 3_000_000}, 2_750_000, "DAILY_LIMIT_REACHED", DAILY, id="daily-cap"
        ),
    ],
)
def test_a_line_that_lost_a_race_is_refused_and_the_next_line_is_claimed(
    store: FakeMatchStore,
    service: MatchService,
    receive: Callable[..., Order],
    *,
    first_line: dict[str, Any],
    taken: int,
    code: str,
    reason: str,
) -> None:
    # Given the best line had room when the lines were read...
    store.put_line("a", priority=1, **first_line)
    store.put_line("b", priority=2)
    store.put_line("c", priority=3)
    order = receive()
    # ...but another order's claim lands on it just before this one
    store.before_claim("a", lambda: store.take("a", taken))

    report = service.match(order)

    assert (report.outcome, report.line_id, report.attempts) == (MatchOutcome.MATCHED, "b", 2)
    assert claimed_lines(store) == ["a", "b"]
    assert decision_of(store, order) == [
        refused(code, reason, "a"),
        ("b", "CLAIMED", None, None),
        ("c", "ELIGIBLE", None, None),
    ]
    # The decision sent with the second claim already knew of the first refusal.
    assert entries(store.claims[1].decision.candidates)[0] == refused(code, reason, "a")
    assert store.line("a").counters.reserved == taken
    assert store.line("b").counters.reserved == AMOUNT


def test_when_every_eligible_line_is_refused_the_order_is_unmatched_with_every_reason(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("a", priority=1, limit=2_000_000)
    store.put_line("b", priority=2, daily_limit=3_000_000)
    store.put_line("z-paused", priority=0, status="PAUSED")
    order = receive()
    store.before_claim("a", lambda: store.take("a", 1_500_000))
    store.before_claim("b", lambda: store.take("b", 2_750_000))

    report = service.match(order)

    assert (report.outcome, report.line_id, report.attempts) == (MatchOutcome.UNMATCHED, None, 2)
    assert claimed_lines(store) == ["a", "b"]
    expected = [
        refused("INSUFFICIENT_CAPACITY", INSUFFICIENT, "a"),
        refused("DAILY_LIMIT_REACHED", DAILY, "b"),
        ("z-paused", "INELIGIBLE", "LINE_PAUSED", "line is PAUSED"),
    ]
    assert [(order_id, entries(d.candidates)) for order_id, d in store.unmatched] == [
        ("shop-1", expected)
    ]
    assert store.unmatched[0][1].strategy == "PRIORITY"
    assert entries(report.candidates) == expected
    unmatched = store.stored(order)
    assert (unmatched.status, unmatched.line_id, unmatched.reserved) == (
        OrderStatus.UNMATCHED,
        None,
        0,
    )
    assert decision_of(store, order) == expected
    assert store.line("a").counters.reserved == 1_500_000
    assert store.line("b").counters.reserved == 2_750_000


@pytest.mark.parametrize("with_lines", [True, False], ids=["none-fits", "no-lines"])
def test_an_order_no_line_can_take_is_unmatched_without_any_claim(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order], with_lines: bool
) -> None:
    if with_lines:
        store.put_line("paused", status="PAUSED")
        store.put_line("small", max_amount=1_000_000)
        store.put_line("full", limit=2_000_000, reserved=1_000_000)
    order = receive()

    report = service.match(order)

    assert (report.outcome, report.attempts) == (MatchOutcome.UNMATCHED, 0)
    assert store.claims == []
    assert len(store.unmatched) == 1
    expected = [
        (
            "full",
            "INELIGIBLE",
            "INSUFFICIENT_CAPACITY",
            "insufficient capacity: available 1000000 < amount 1250000",
        ),
        ("paused", "INELIGIBLE", "LINE_PAUSED", "line is PAUSED"),
        ("small", "INELIGIBLE", "AMOUNT_ABOVE_MAX", "amount above maxAmount 1000000"),
    ]
    assert decision_of(store, order) == (expected if with_lines else [])
    assert store.stored(order).status is OrderStatus.UNMATCHED


@pytest.mark.parametrize(
    "moved_to",
    [OrderStatus.MATCHED, OrderStatus.CANCELLED, OrderStatus.RECEIVED],
    ids=["matched-by-another-delivery", "cancelled", "requeued-at-a-new-version"],
)
def test_an_order_that_moved_under_its_claim_stops_at_once_as_already_handled(
    store: FakeMatchStore,
    service: MatchService,
    receive: Callable[..., Order],
    moved_to: OrderStatus,
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.move_order(order, moved_to))

    report = service.match(order)

    assert report.outcome is MatchOutcome.ALREADY_HANDLED
    assert report.line_id is None
    assert claimed_lines(store) == ["a"]
    assert store.unmatched == []
    assert store.stored(order).status is moved_to
    assert store.stored(order).version == order.version + 1
    assert all(record.line.counters == LineCounters() for record in store.records.values())


def test_an_order_that_moved_before_it_was_marked_unmatched_is_already_handled(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("paused", status="PAUSED")
    order = receive()
    store.before_mark_unmatched(lambda: store.move_order(order, OrderStatus.CANCELLED))

    report = service.match(order)

    assert report.outcome is MatchOutcome.ALREADY_HANDLED
    assert len(store.unmatched) == 1
    assert store.stored(order).status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    "status", [s for s in OrderStatus if s is not OrderStatus.RECEIVED], ids=str
)
def test_an_order_not_waiting_for_a_match_is_already_handled_without_reads_or_writes(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
    status: OrderStatus,
) -> None:
    store.put_line("a")
    order = receive().model_copy(update={"status": status})

    report = service.match(order)

    assert report == MatchReport(MatchOutcome.ALREADY_HANDLED)
    assert source.calls == []
    assert store.claims == []
    assert store.unmatched == []


# ------------------------------------------------------ a line changed under a claim


def test_a_configuration_change_under_the_claim_rereads_that_line_and_claims_it_once_more(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.reconfigure("a", hold_seconds=1800))

    report = service.match(order)

    assert (report.outcome, report.line_id, report.attempts) == (MatchOutcome.MATCHED, "a", 2)
    assert [(c.line_id, c.config_version) for c in store.claims] == [("a", 1), ("a", 2)]
    assert [call for call in source.calls if call[0] == "get"] == [("get", "a", TODAY)]
    # The retry is made on the fresh record: its hold time is the new one.
    assert store.stored(order).hold_expires_at == NOW + timedelta(seconds=1800)
    assert decision_of(store, order) == [
        ("a", "CLAIMED", None, None),
        ("b", "ELIGIBLE", None, None),
    ]
    assert store.line("a").counters.reserved == AMOUNT


def test_after_a_configuration_change_the_next_match_reads_the_lines_again(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a")
    store.before_claim("a", lambda: store.reconfigure("a", apr_bps=990))
    service.match(receive("shop-1"))
    assert source.count("list_lines") == 1

    service.match(receive("shop-2"))

    assert source.count("list_lines") == 2
    assert [(c.order_id, c.config_version) for c in store.claims] == [
        ("shop-1", 1),
        ("shop-1", 2),
        ("shop-2", 2),
    ]


def test_a_line_paused_under_the_claim_is_refused_on_its_fresh_record_and_the_next_is_claimed(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.reconfigure("a", status="PAUSED"))

    report = service.match(order)

    # The fresh record is judged before another claim: a paused line costs none.
    assert (report.line_id, report.attempts) == ("b", 2)
    assert [(c.line_id, c.config_version) for c in store.claims] == [("a", 1), ("b", 1)]
    assert decision_of(store, order) == [
        ("a", "REFUSED", "LINE_PAUSED", "line is PAUSED"),
        ("b", "CLAIMED", None, None),
    ]
    assert store.line("a").counters == LineCounters()


def test_a_line_changed_again_under_the_retry_is_refused_after_two_claims(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.reconfigure("a", apr_bps=990))
    store.before_claim("a", lambda: store.reconfigure("a", apr_bps=890))

    report = service.match(order)

    assert (report.line_id, report.attempts) == ("b", 3)
    assert [(c.line_id, c.config_version) for c in store.claims] == [("a", 1), ("a", 2), ("b", 1)]
    assert decision_of(store, order)[0] == (
        "a",
        "REFUSED",
        "line_config_changed",
        "line a changed while it was being updated; retry",
    )
    assert store.line("a").counters == LineCounters()


def test_a_line_changed_again_under_the_retry_is_read_again_only_once(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.reconfigure("a", apr_bps=990))
    store.before_claim("a", lambda: store.reconfigure("a", apr_bps=890))

    service.match(order)

    assert source.count("get") == 1


def test_a_configuration_change_that_excludes_the_order_is_not_claimed_on_the_retry(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.reconfigure("a", max_amount=1_000_000))

    report = service.match(order)

    assert report.line_id == "b"
    assert store.line("a").counters == LineCounters()


def test_a_line_removed_under_the_claim_is_refused_and_the_next_is_claimed(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=2)
    order = receive()
    store.before_claim("a", lambda: store.remove("a"))

    report = service.match(order)

    assert (report.line_id, report.attempts) == ("b", 2)
    assert source.count("get") == 0
    assert decision_of(store, order)[0] == ("a", "REFUSED", "line_not_found", "line a not found")


# ------------------------------------------------------------------ the catalog


def test_within_the_ttl_lines_and_routing_are_read_once(
    store: FakeMatchStore,
    source: FakeLineSource,
    monotonic: Timer,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a")
    service.match(receive("shop-1"))

    monotonic.advance(TTL - 0.001)
    report = service.match(receive("shop-2"))

    assert report.outcome is MatchOutcome.MATCHED
    assert source.calls == [("catalog_marker",), ("list_lines",), ("get_routing", TENANT)]
    assert store.line("a").counters.reserved == 2 * AMOUNT


def test_once_the_ttl_has_passed_lines_and_routing_are_read_again(
    store: FakeMatchStore,
    source: FakeLineSource,
    monotonic: Timer,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a")
    service.match(receive("shop-1"))

    monotonic.advance(TTL)
    service.match(receive("shop-2"))

    assert source.calls == [("catalog_marker",), ("list_lines",), ("get_routing", TENANT)] * 2


def test_the_catalog_says_whether_its_lines_were_read_just_now(
    store: FakeMatchStore, monotonic: Timer, catalog: LineCatalog
) -> None:
    store.put_line("a")

    first, first_fresh = catalog.lines()
    store.put_line("b")
    monotonic.advance(1)
    cached, cached_fresh = catalog.lines()
    monotonic.advance(TTL)
    again, again_fresh = catalog.lines()

    assert (first_fresh, cached_fresh, again_fresh) == (True, False, True)
    assert [r.line.line_id for r in cached] == ["a"]
    assert sorted(r.line.line_id for r in again) == ["a", "b"]
    assert first is cached


def test_routing_policies_are_cached_per_tenant(
    source: FakeLineSource, monotonic: Timer, catalog: LineCatalog
) -> None:
    source.policies["tenant-b"] = RoutingPolicy(strategy=Strategy.LOWEST_COST)

    assert catalog.routing(TENANT) == DEFAULT_POLICY
    assert catalog.routing("tenant-b").strategy is Strategy.LOWEST_COST
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.BEST_FIT)
    monotonic.advance(TTL - 1)
    assert catalog.routing(TENANT) == DEFAULT_POLICY
    monotonic.advance(1)
    assert catalog.routing(TENANT).strategy is Strategy.BEST_FIT
    assert source.calls == [
        ("get_routing", TENANT),
        ("get_routing", "tenant-b"),
        ("get_routing", TENANT),
    ]


def test_a_tenant_without_a_policy_is_routed_by_priority_over_every_line(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("cheap", priority=20, apr_bps=500)
    store.put_line("first", priority=1, apr_bps=2000, funder_id="trust-b")
    store.put_line("third", priority=30)
    order = receive()

    report = service.match(order)

    assert report.line_id == "first"
    decision = store.stored(order).decision
    assert decision is not None
    assert decision.strategy == "PRIORITY"
    assert entries(decision.candidates) == [
        ("first", "CLAIMED", None, None),
        ("cheap", "ELIGIBLE", None, None),
        ("third", "ELIGIBLE", None, None),
    ]
    assert store.stored(order).funder_id == "trust-b"


def test_a_tenant_policy_restricts_the_candidates_to_its_lines(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a", priority=1)
    store.put_line("b", priority=3)
    store.put_line("c", priority=2)
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=["b", "c"])
    order = receive()
    store.before_claim("c", lambda: store.take("c", 99_000_000))

    report = service.match(order)

    assert report.line_id == "b"
    assert claimed_lines(store) == ["c", "b"]
    assert decision_of(store, order) == [
        refused(
            "INSUFFICIENT_CAPACITY",
            "insufficient capacity: available 1000000 < amount 1250000",
            "c",
        ),
        ("b", "CLAIMED", None, None),
    ]
    # A line outside the tenant's policy is counted, never named.
    assert store.stored(order).decision.more == {"NOT_IN_POLICY": 1}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("lines", "reason", "more"),
    [([], "NO_LINES", {}), (["a"], "NO_LINE_IN_POLICY", {"NOT_IN_POLICY": 1})],
)
def test_an_order_that_finds_no_line_at_all_says_why(
    *,
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
    lines: list[str],
    reason: str,
    more: dict[str, int],
) -> None:
    for line_id in lines:
        store.put_line(line_id, priority=1)
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=["z"])
    order = receive()

    service.match(order)

    stored = store.stored(order)
    assert stored.status is OrderStatus.UNMATCHED
    assert stored.decision is not None
    assert (stored.decision.candidates, stored.decision.more) == ([], more)
    assert stored.decision.reason == reason


# ------------------------------------------- a change honoured by the next refusal


def warm(service: MatchService, receive: Callable[..., Order]) -> None:
    """A container that has cached the lines and the tenant's policy."""
    service.match(receive("warm-up"))


def test_a_line_created_after_the_cache_was_read_takes_the_order_it_alone_fits(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("small", max_amount=100_000)
    warm(service, receive)
    source.change(store.put_line("new"))  # the operator opens a line, at once an order

    report = service.match(receive("shop-1"))

    assert (report.outcome, report.line_id) == (MatchOutcome.MATCHED, "new")
    assert store.orders[(TENANT, "shop-1")].status is OrderStatus.MATCHED


def test_a_line_resumed_after_the_cache_was_read_takes_the_order(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("only", status="PAUSED")
    warm(service, receive)
    resumed = store.put_line("only")
    store.records["only"] = replace(resumed, config_version=2)
    source.change(store.records["only"])

    report = service.match(receive("shop-1"))

    assert (report.outcome, report.line_id) == (MatchOutcome.MATCHED, "only")


def test_a_routing_change_after_the_cache_was_read_is_honoured(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("a")
    store.put_line("b")
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=["a"])
    warm(service, receive)
    store.put_line("a", status="PAUSED")  # same configVersion in the fake: a cached "a" stays
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=["b"])
    source.change()

    report = service.match(receive("shop-1"))

    assert (report.outcome, report.line_id) == (MatchOutcome.MATCHED, "b")


def test_a_line_the_lagging_index_does_not_show_yet_is_read_from_the_table(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    warm(service, receive)
    source.change(store.put_line("new"))
    source.lagging.add("new")

    report = service.match(receive("shop-1"))

    assert (report.outcome, report.line_id) == (MatchOutcome.MATCHED, "new")
    assert ("get", "new") in source.calls


def test_without_a_change_a_refusal_costs_one_marker_read_and_no_reload(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("small", max_amount=100_000)
    warm(service, receive)
    source.calls.clear()

    report = service.match(receive("shop-1"))

    assert report.outcome is MatchOutcome.UNMATCHED
    assert source.calls == [("catalog_marker",)]


def test_in_one_batch_the_marker_is_read_once_and_a_cached_match_reads_nothing(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    store.put_line("small", max_amount=2_000_000)
    warm(service, receive)
    source.calls.clear()

    with service.batch():
        outcomes = [service.match(receive(f"big-{i}", amount=3_000_000)).outcome for i in range(5)]
        matched = service.match(receive("fits"))

    assert outcomes == [MatchOutcome.UNMATCHED] * 5
    assert matched.outcome is MatchOutcome.MATCHED
    assert source.calls == [("catalog_marker",)]


# ------------------------------------------------- counters from the cache


def full_line(store: FakeMatchStore, kind: str) -> None:
    """`full`, the best-ranked line, with no room left overall or today."""
    if kind == "limit":
        store.put_line(
            "full", priority=1, limit=2_000_000, reserved=2_000_000, daily_used={TODAY: 2_000_000}
        )
    else:
        store.put_line(
            "full",
            priority=1,
            daily_limit=2_000_000,
            reserved=2_000_000,
            daily_used={TODAY: 2_000_000},
        )


@pytest.mark.parametrize("kind", ["limit", "daily"])
def test_a_line_full_in_the_cached_read_but_with_room_now_is_tried_after_the_eligible_ones(
    store: FakeMatchStore,
    catalog: LineCatalog,
    service: MatchService,
    receive: Callable[..., Order],
    kind: str,
) -> None:
    # Given the lines were read while `full` had no room, and cached
    full_line(store, kind)
    store.put_line("open", priority=50, limit=2_000_000)
    catalog.lines()
    # When another order on `full` is cancelled and `open` fills up under the claim
    store.release("full", 2_000_000)
    order = receive()
    store.before_claim("open", lambda: store.take("open", 1_500_000))

    report = service.match(order)

    # Then `full` is still tried, after the line that looked eligible, and claimed
    assert (report.outcome, report.line_id) == (MatchOutcome.MATCHED, "full")
    assert claimed_lines(store) == ["open", "full"]
    assert decision_of(store, order) == [
        refused("INSUFFICIENT_CAPACITY", INSUFFICIENT, "open"),
        ("full", "CLAIMED", None, None),
    ]
    assert store.line("full").counters.reserved == AMOUNT


def test_a_line_full_in_the_cached_read_is_not_tried_while_an_eligible_line_takes_the_order(
    store: FakeMatchStore,
    catalog: LineCatalog,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    full_line(store, "limit")
    store.put_line("open", priority=50)
    catalog.lines()
    store.release("full", 2_000_000)

    report = service.match(receive())

    assert report.line_id == "open"
    assert claimed_lines(store) == ["open"]


def test_a_line_still_full_when_tried_from_the_cache_is_refused_with_its_reason(
    store: FakeMatchStore,
    catalog: LineCatalog,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    full_line(store, "limit")
    catalog.lines()
    order = receive()

    report = service.match(order)

    assert (report.outcome, report.attempts) == (MatchOutcome.UNMATCHED, 1)
    assert decision_of(store, order) == [
        refused(
            "INSUFFICIENT_CAPACITY", "insufficient capacity: available 0 < amount 1250000", "full"
        )
    ]


@pytest.mark.parametrize("kind", ["limit", "daily"])
def test_with_a_fresh_read_a_full_line_is_not_tried(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order], kind: str
) -> None:
    full_line(store, kind)
    store.put_line("open", priority=50, limit=2_000_000)
    order = receive()
    store.before_claim("open", lambda: store.take("open", 1_500_000))

    report = service.match(order)

    assert report.outcome is MatchOutcome.UNMATCHED
    assert claimed_lines(store) == ["open"]
    full = next(c for c in store.unmatched[0][1].candidates if c.line_id == "full")
    assert (full.outcome, full.code) == (
        "INELIGIBLE",
        "INSUFFICIENT_CAPACITY" if kind == "limit" else "DAILY_LIMIT_REACHED",
    )


def test_lines_full_in_the_cached_read_are_tried_in_the_policy_order(
    store: FakeMatchStore,
    catalog: LineCatalog,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    full: dict[str, Any] = {
        "limit": 2_000_000,
        "reserved": 2_000_000,
        "daily_used": {TODAY: 2_000_000},
    }
    store.put_line("a-last", priority=50, **full)
    store.put_line("z-first", priority=1, **full)
    catalog.lines()
    store.release("a-last", 2_000_000)
    store.release("z-first", 2_000_000)

    report = service.match(receive())

    assert report.line_id == "z-first"


# ----------------------------------------------------------------- declined lines


def test_a_line_that_declined_the_order_is_never_claimed(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    store.put_line("declined", priority=1)
    store.put_line("other", priority=2)
    order = receive(declined=["declined"])

    report = service.match(order)

    assert report.line_id == "other"
    assert claimed_lines(store) == ["other"]
    assert decision_of(store, order) == [
        ("other", "CLAIMED", None, None),
        ("declined", "INELIGIBLE", "EXCLUDED", "line declined this order before"),
    ]
    assert store.stored(order).version == 4


def test_a_declined_line_is_not_tried_even_when_the_cache_showed_it_full_and_the_rest_refuse(
    store: FakeMatchStore,
    catalog: LineCatalog,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    full_line(store, "limit")
    store.put_line("other", priority=2, limit=2_000_000)
    catalog.lines()
    store.release("full", 2_000_000)
    order = receive(declined=["full"])
    store.before_claim("other", lambda: store.take("other", 1_500_000))

    report = service.match(order)

    assert report.outcome is MatchOutcome.UNMATCHED
    assert claimed_lines(store) == ["other"]
    assert store.line("full").counters == LineCounters()


# -------------------------------------------------------------------- strategies


def strategy_lines(store: FakeMatchStore) -> None:
    """Four lines each strategy ranks differently."""
    store.put_line("p-top", priority=1, apr_bps=2000, weight=10, matched_total=5_000_000)
    store.put_line("c-cheap", priority=20, apr_bps=500, weight=10, matched_total=5_000_000)
    store.put_line(
        "f-snug", priority=30, apr_bps=2000, weight=10, limit=2_000_000, matched_total=5_000_000
    )
    store.put_line("w-behind", priority=40, apr_bps=2000, weight=70)


@pytest.mark.parametrize(
    ("strategy", "ranked"),
    [
        (Strategy.PRIORITY, ["p-top", "c-cheap", "f-snug", "w-behind"]),
        (Strategy.LOWEST_COST, ["c-cheap", "p-top", "f-snug", "w-behind"]),
        (Strategy.BEST_FIT, ["f-snug", "p-top", "c-cheap", "w-behind"]),
        (Strategy.WEIGHTED, ["w-behind", "p-top", "c-cheap", "f-snug"]),
    ],
    ids=str,
)
def test_each_strategy_claims_its_best_line_first(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
    *,
    strategy: Strategy,
    ranked: list[str],
) -> None:
    strategy_lines(store)
    source.policies[TENANT] = RoutingPolicy(strategy=strategy)
    order = receive()

    report = service.match(order)

    assert report.line_id == ranked[0]
    assert claimed_lines(store) == ranked[:1]
    decision = store.stored(order).decision
    assert decision is not None
    assert decision.strategy == strategy.value
    assert [(c.line_id, c.outcome) for c in decision.candidates] == [
        (ranked[0], "CLAIMED"),
        *((line_id, "ELIGIBLE") for line_id in ranked[1:]),
    ]


def test_weighted_routing_measures_share_by_the_volume_ever_matched_not_by_what_is_held(
    store: FakeMatchStore,
    source: FakeLineSource,
    service: MatchService,
    receive: Callable[..., Order],
) -> None:
    # `a` has matched much but holds nothing now; `b` holds a lot but matched little.
    store.put_line("a", priority=1, matched_total=10_000_000)
    store.put_line("b", priority=2, reserved=3_000_000, matched_total=3_000_000)
    source.policies[TENANT] = RoutingPolicy(strategy=Strategy.WEIGHTED)

    report = service.match(receive())

    assert report.line_id == "b"


# --------------------------------------------------------------- the invariant

UNIT = 10_000

line_specs = st.fixed_dictionaries(
    {
        "limit": st.integers(1, 60),
        "daily_limit": st.none() | st.integers(1, 40),
        "drawn": st.integers(0, 60),
        "min_amount": st.integers(1, 8),
        "span": st.integers(0, 30),
        "priority": st.integers(0, 4),
        "apr_bps": st.integers(0, 3).map(lambda n: 500 * n),
        "weight": st.integers(0, 3),
        "paused": st.booleans(),
    }
)
order_specs = st.fixed_dictionaries(
    {
        "amount": st.integers(1, 30),
        "elapsed": st.sampled_from([0.0, 1.0, TTL]),
        # An operator re-puts a line before the match, another order's claim lands
        # on a line between the read and this order's claim.
        "reconfigure": st.none() | st.integers(0, 4),
        "race": st.none() | st.tuples(st.integers(0, 4), st.integers(1, 20)),
    }
)


def _lines_from(store: FakeMatchStore, specs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for index, spec in enumerate(specs):
        limit = spec["limit"] * UNIT
        line_id = f"line-{index}"
        store.put_line(
            line_id,
            limit=limit,
            daily_limit=None if spec["daily_limit"] is None else spec["daily_limit"] * UNIT,
            drawn=min(spec["drawn"] * UNIT, limit),
            min_amount=spec["min_amount"] * UNIT,
            max_amount=(spec["min_amount"] + spec["span"]) * UNIT,
            priority=spec["priority"],
            apr_bps=spec["apr_bps"],
            weight=spec["weight"],
            status="PAUSED" if spec["paused"] else "ACTIVE",
        )
        ids.append(line_id)
    return ids


def _assert_counters_match_orders(store: FakeMatchStore) -> None:
    held: Counter[str] = Counter()
    for stored in store.orders.values():
        if stored.status is OrderStatus.MATCHED:
            assert stored.line_id is not None
            assert stored.reserved == stored.amount
            held[stored.line_id] += stored.amount
    for line_id, record in store.records.items():
        counters, config = record.line.counters, record.line.config
        assert counters.reserved + counters.drawn <= config.limit, line_id
        assert counters.reserved == held[line_id] + store.taken_elsewhere[line_id], line_id
        assert record.matched_total == counters.reserved, line_id
        if config.daily_limit is not None:
            assert counters.used_on(TODAY) <= config.daily_limit, line_id


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(line_specs, min_size=1, max_size=5),
    orders=st.lists(order_specs, min_size=1, max_size=12),
    strategy=st.sampled_from(Strategy),
)
def test_matching_orders_one_after_another_never_over_allocates_and_decides_every_order(
    lines: list[dict[str, Any]], orders: list[dict[str, Any]], strategy: Strategy
) -> None:
    store = FakeMatchStore(NOW, TODAY, line_config)
    source = FakeLineSource(store)
    source.policies[TENANT] = RoutingPolicy(strategy=strategy)
    monotonic = Timer()
    service = MatchService(LineCatalog(source, TTL, monotonic), store, lambda: NOW)
    line_ids = _lines_from(store, lines)

    for number, spec in enumerate(orders):
        monotonic.advance(spec["elapsed"])
        if spec["reconfigure"] is not None:
            store.reconfigure(line_ids[spec["reconfigure"] % len(line_ids)])
        if spec["race"] is not None:
            target = line_ids[spec["race"][0] % len(line_ids)]
            amount = spec["race"][1] * UNIT
            store.before_claim(target, partial(store.take, target, amount))
        order = store.add_order(received_order(f"order-{number}", amount=spec["amount"] * UNIT))

        report = service.match(order)
        store.forget_interjections()

        decided = store.stored(order)
        assert decided.status in {OrderStatus.MATCHED, OrderStatus.UNMATCHED}
        assert report.outcome.value == decided.status.value
        assert report.line_id == decided.line_id
        if decided.status is OrderStatus.UNMATCHED:
            # Nothing was left that could have taken it.
            facts = OrderFacts.of(order)
            policy = RoutingPolicy(strategy=strategy)
            assert not [
                r.line.line_id
                for r in store.records.values()
                if evaluate(r.line, facts, NOW, policy=policy).eligible
            ]
        else:
            config = store.line(decided.line_id or "").config
            assert config.min_amount <= order.amount <= config.max_amount
        _assert_counters_match_orders(store)

    assert len([c for c in store.claims if c.order_id == "order-0"]) <= 2 * len(line_ids)


def test_the_fake_store_refuses_what_the_line_refuses(store: FakeMatchStore) -> None:
    """The fake is only as good as its checks: a claim the pure line refuses, at a
    stale configuration version, or for a moved order never moves a counter."""
    record = store.put_line("a", limit=2_000_000)
    order = store.add_order(received_order())
    decision = Decision(strategy="PRIORITY", candidates=[])
    hold = NOW + timedelta(seconds=900)
    store.take("a", 1_500_000)

    too_big = store.claim(order, record, NOW, hold, decision)
    store.reconfigure("a", limit=5_000_000)
    stale = store.claim(order, record, NOW, hold, decision)
    moved = store.claim(order.model_copy(update={"version": 7}), record, NOW, hold, decision)

    assert too_big.result is ClaimResult.LINE_REFUSED
    assert isinstance(too_big.refusal, DomainError)
    assert too_big.refusal.code == "insufficient_capacity"
    assert stale.result is ClaimResult.LINE_REFUSED
    assert isinstance(stale.refusal, StaleLineConfig)
    assert moved == ClaimAttempt(ClaimResult.ORDER_MOVED)
    assert store.line("a").counters.reserved == 1_500_000
    assert store.stored(order).status is OrderStatus.RECEIVED


def test_a_decision_names_at_most_ten_other_lines_and_counts_the_rest_by_code(
    store: FakeMatchStore, service: MatchService, receive: Callable[..., Order]
) -> None:
    for index in range(30):
        store.put_line(f"big-{index:02d}", priority=index, min_amount=5_000_000)
    for index in range(20):
        store.put_line(f"ok-{index:02d}", priority=100 + index)
    order = receive()

    report = service.match(order)

    decision = store.stored(order).decision
    assert decision is not None
    assert report.line_id == "ok-00"
    assert [c.line_id for c in decision.candidates] == ["ok-00"] + [
        f"ok-{index:02d}" for index in range(1, 11)
    ]
    assert decision.more == {"ELIGIBLE": 9, "AMOUNT_BELOW_MIN": 30}
