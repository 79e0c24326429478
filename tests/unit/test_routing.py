"""Routing: which lines may take an order (with the reason for every one that may
not), and the order each strategy tries them in."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fundrouter.domain.lines import (
    Line,
    LineCounters,
    LineRefusal,
)
from fundrouter.domain.orders import Candidate
from fundrouter.domain.routing import (
    Evaluation,
    OrderFacts,
    Outcome,
    RoutingPolicy,
    Strategy,
    evaluate,
    rank,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.support.factories import line_config, order_request

# 16:00 in Shanghai: the lines' day is 2026-11-24.
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TODAY = "2026-11-24"


def make_line(
    line_id: str = "bank-a-consumer",
    *,
    reserved: int = 0,
    drawn: int = 0,
    daily_used: dict[str, int] | None = None,
    **overrides: Any,
) -> Line:
    """A line that takes any CNY order up to 5,000,000, unless told otherwise."""
    config = line_config(name=line_id, **overrides)
    return Line(line_id, config, LineCounters(reserved, drawn, daily_used or {}))


def make_order(**overrides: Any) -> OrderFacts:
    values: dict[str, Any] = {
        "amount": 10_000,
        "currency": "CNY",
        "term_months": 12,
        "product": "installment",
        "region": "GD",
        "credit_grade": "B",
    }
    return OrderFacts(**(values | overrides))


def policy(
    strategy: Strategy = Strategy.PRIORITY, line_ids: list[str] | None = None
) -> RoutingPolicy:
    return RoutingPolicy(strategy=strategy, line_ids=line_ids or [])


def ranked_ids(
    lines: list[Line],
    strategy: Strategy,
    order: OrderFacts | None = None,
    matched_volume: dict[str, int] | None = None,
) -> list[str]:
    ranking = rank(
        lines, order or make_order(), policy(strategy), NOW, matched_volume=matched_volume
    )
    return [line.line_id for line in ranking.lines]


# ------------------------------------------------------------------ eligibility


def test_a_line_whose_rules_and_room_fit_is_eligible() -> None:
    line = make_line(terms=[12], products=["installment"], regions=["GD"], credit_grades=["B"])

    evaluation = evaluate(line, make_order(), NOW)

    assert evaluation == Evaluation("bank-a-consumer", Outcome.ELIGIBLE, None)
    assert evaluation.eligible


@pytest.mark.parametrize(
    ("line", "order", "outcome", "reason"),
    [
        pytest.param(
            make_line(status="PAUSED"),
            make_order(),
            Outcome.LINE_PAUSED,
            "line is PAUSED",
            id="paused",
        ),
        pytest.param(
            make_line(active_from=NOW + timedelta(days=7)),
            make_order(),
            Outcome.OUTSIDE_VALIDITY_WINDOW,
            "outside validity window: opens 2026-12-01T08:00:00.000Z",
            id="not-open-yet",
        ),
        pytest.param(
            make_line(active_until=NOW),
            make_order(),
            Outcome.OUTSIDE_VALIDITY_WINDOW,
            "outside validity window: ended 2026-11-24T08:00:00.000Z",
            id="ended",
        ),
        pytest.param(
            make_line(currency="CNY"),
            make_order(currency="USD"),
            Outcome.CURRENCY_MISMATCH,
            "currency USD not offered (CNY)",
            id="currency",
        ),
        pytest.param(
            make_line(min_amount=20_000),
            make_order(amount=19_999),
            Outcome.AMOUNT_BELOW_MIN,
            "amount below minAmount 20000",
            id="below-min",
        ),
        pytest.param(
            make_line(max_amount=1_000_000),
            make_order(amount=1_250_000),
            Outcome.AMOUNT_ABOVE_MAX,
            "amount above maxAmount 1000000",
            id="above-max",
        ),
        pytest.param(
            make_line(terms=[12, 3, 6]),
            make_order(term_months=36),
            Outcome.TERM_NOT_OFFERED,
            "term 36 not offered (3, 6, 12)",
            id="term",
        ),
        pytest.param(
            make_line(products=["installment", "cash"]),
            make_order(product="car"),
            Outcome.PRODUCT_NOT_OFFERED,
            "product car not offered (cash, installment)",
            id="product",
        ),
        pytest.param(
            make_line(regions=["ZJ", "GD"]),
            make_order(region="SH"),
            Outcome.REGION_NOT_SERVED,
            "region SH not served (GD, ZJ)",
            id="region",
        ),
        pytest.param(
            make_line(regions=["GD"]),
            make_order(region=None),
            Outcome.REGION_NOT_SERVED,
            "region not given, line serves (GD)",
            id="region-missing",
        ),
        pytest.param(
            make_line(credit_grades=["B", "A"]),
            make_order(credit_grade="C"),
            Outcome.CREDIT_GRADE_NOT_ACCEPTED,
            "credit grade C not accepted (A, B)",
            id="credit-grade",
        ),
        pytest.param(
            make_line(credit_grades=["A"]),
            make_order(credit_grade=None),
            Outcome.CREDIT_GRADE_NOT_ACCEPTED,
            "credit grade not given, line accepts (A)",
            id="credit-grade-missing",
        ),
        pytest.param(
            make_line(limit=25_000, reserved=10_000, drawn=10_000),
            make_order(amount=10_000),
            Outcome.INSUFFICIENT_CAPACITY,
            "insufficient capacity: available 5000 < amount 10000",
            id="capacity",
        ),
        pytest.param(
            make_line(limit=50_000, reserved=20_000, drawn=40_000),
            make_order(amount=1),
            Outcome.INSUFFICIENT_CAPACITY,
            "insufficient capacity: available -10000 < amount 1",
            id="limit-lowered",
        ),
        pytest.param(
            make_line(daily_limit=50_000, reserved=45_000, daily_used={TODAY: 45_000}),
            make_order(amount=10_000),
            Outcome.DAILY_LIMIT_REACHED,
            "daily limit reached: room 5000 on 2026-11-24 < amount 10000",
            id="daily",
        ),
    ],
)
def test_an_ineligible_line_says_exactly_why(
    line: Line, order: OrderFacts, outcome: Outcome, reason: str
) -> None:
    evaluation = evaluate(line, order, NOW)

    assert (evaluation.outcome, evaluation.reason) == (outcome, reason)
    assert not evaluation.eligible


def test_amount_on_either_bound_of_the_range_is_eligible() -> None:
    line = make_line(min_amount=10_000, max_amount=20_000)

    assert evaluate(line, make_order(amount=10_000), NOW).eligible
    assert evaluate(line, make_order(amount=20_000), NOW).eligible


def test_empty_rule_lists_accept_any_term_product_region_and_grade() -> None:
    line = make_line(terms=[], products=[], regions=[], credit_grades=[])
    order = make_order(term_months=480, product="anything", region=None, credit_grade=None)

    assert evaluate(line, order, NOW).eligible


def test_a_line_that_declined_the_order_before_is_excluded() -> None:
    evaluation = evaluate(make_line("trust-b"), make_order(), NOW, {"trust-b"})

    assert (evaluation.outcome, evaluation.reason) == (
        Outcome.EXCLUDED,
        "line declined this order before",
    )


def test_a_line_outside_the_policys_line_ids_is_not_considered() -> None:
    evaluation = evaluate(
        make_line("trust-b"), make_order(), NOW, policy=policy(line_ids=["bank-a-consumer"])
    )

    assert (evaluation.outcome, evaluation.reason) == (
        Outcome.NOT_IN_POLICY,
        "line not in the routing policy",
    )


def test_a_policy_without_line_ids_allows_every_line() -> None:
    assert evaluate(make_line("trust-b"), make_order(), NOW, policy=policy()).eligible


@pytest.mark.parametrize(
    ("line", "order", "excluded", "outcome"),
    [
        pytest.param(
            make_line("other", status="PAUSED"), make_order(), {"other"}, Outcome.NOT_IN_POLICY
        ),
        pytest.param(
            make_line(status="PAUSED", currency="USD"),
            make_order(),
            {"bank-a-consumer"},
            Outcome.EXCLUDED,
        ),
        pytest.param(
            make_line(status="PAUSED", active_until=NOW),
            make_order(currency="USD"),
            set(),
            Outcome.LINE_PAUSED,
        ),
        pytest.param(
            make_line(active_until=NOW, max_amount=1),
            make_order(currency="USD"),
            set(),
            Outcome.OUTSIDE_VALIDITY_WINDOW,
        ),
        pytest.param(
            make_line(max_amount=1), make_order(currency="USD"), set(), Outcome.CURRENCY_MISMATCH
        ),
        pytest.param(
            make_line(max_amount=1, terms=[3]),
            make_order(term_months=12),
            set(),
            Outcome.AMOUNT_ABOVE_MAX,
        ),
        pytest.param(
            make_line(terms=[3], products=["cash"]), make_order(), set(), Outcome.TERM_NOT_OFFERED
        ),
        pytest.param(
            make_line(products=["cash"], regions=["SH"]),
            make_order(),
            set(),
            Outcome.PRODUCT_NOT_OFFERED,
        ),
        pytest.param(
            make_line(regions=["SH"], credit_grades=["A"]),
            make_order(),
            set(),
            Outcome.REGION_NOT_SERVED,
        ),
        pytest.param(
            make_line(credit_grades=["A"], limit=1),
            make_order(),
            set(),
            Outcome.CREDIT_GRADE_NOT_ACCEPTED,
        ),
        pytest.param(
            make_line(limit=1, daily_limit=1), make_order(), set(), Outcome.INSUFFICIENT_CAPACITY
        ),
    ],
)
def test_checks_run_in_a_fixed_order_and_the_first_failure_decides(
    line: Line, order: OrderFacts, excluded: set[str], outcome: Outcome
) -> None:
    only_others = policy(line_ids=["bank-a-consumer"])

    assert evaluate(line, order, NOW, excluded, policy=only_others).outcome is outcome


@given(
    limit=st.integers(1, 100_000),
    reserved=st.integers(0, 100_000),
    drawn=st.integers(0, 100_000),
    daily_limit=st.none() | st.integers(1, 100_000),
    used_today=st.integers(0, 100_000),
    amount=st.integers(1, 100_000),
    status=st.sampled_from(["ACTIVE", "PAUSED"]),
    currency=st.sampled_from(["CNY", "USD"]),
)
def test_routing_finds_a_line_eligible_exactly_when_its_claim_would_succeed(
    *,
    limit: int,
    reserved: int,
    drawn: int,
    daily_limit: int | None,
    used_today: int,
    amount: int,
    status: str,
    currency: str,
) -> None:
    line = make_line(
        limit=limit,
        daily_limit=daily_limit,
        status=status,
        reserved=reserved,
        drawn=drawn,
        daily_used={TODAY: used_today},
        max_amount=100_000,
    )
    evaluation = evaluate(line, make_order(amount=amount, currency=currency), NOW)

    if evaluation.eligible:
        assert line.claim(amount, currency, NOW).counters.reserved == reserved + amount
    else:
        with pytest.raises(LineRefusal) as refused:
            line.claim(amount, currency, NOW)
        assert refused.value.reason == evaluation.reason


def test_order_facts_come_from_the_order_and_its_customer() -> None:
    request = order_request(metadata={})

    assert OrderFacts.of(request) == OrderFacts(1_250_000, "CNY", 12, "installment", "GD", "B")


def test_an_evaluation_becomes_a_decision_candidate() -> None:
    ineligible = Evaluation("trust-b", Outcome.AMOUNT_ABOVE_MAX, "amount above maxAmount 1000000")

    assert ineligible.as_candidate() == Candidate(
        line_id="trust-b",
        outcome="INELIGIBLE",
        code="AMOUNT_ABOVE_MAX",
        reason="amount above maxAmount 1000000",
    )
    assert Evaluation("bank-a", Outcome.ELIGIBLE).as_candidate() == Candidate(
        line_id="bank-a", outcome="ELIGIBLE"
    )


# ------------------------------------------------------------------ strategies


def test_priority_tries_the_lowest_priority_number_first() -> None:
    lines = [make_line("b", priority=20), make_line("a", priority=30), make_line("c", priority=10)]

    assert ranked_ids(lines, Strategy.PRIORITY) == ["c", "b", "a"]


def test_priority_ties_go_to_the_line_id() -> None:
    lines = [make_line("b", priority=10), make_line("c", priority=5), make_line("a", priority=10)]

    assert ranked_ids(lines, Strategy.PRIORITY) == ["c", "a", "b"]


def test_lowest_cost_tries_the_lowest_apr_first() -> None:
    lines = [
        make_line("a", apr_bps=1500, priority=1),
        make_line("b", apr_bps=900, priority=3),
        make_line("c", apr_bps=1200, priority=2),
    ]

    assert ranked_ids(lines, Strategy.LOWEST_COST) == ["b", "c", "a"]


def test_lowest_cost_ties_go_to_priority_then_line_id() -> None:
    lines = [
        make_line("d", apr_bps=900, priority=2),
        make_line("c", apr_bps=900, priority=1),
        make_line("b", apr_bps=900, priority=2),
        make_line("a", apr_bps=1000, priority=0),
    ]

    assert ranked_ids(lines, Strategy.LOWEST_COST) == ["c", "b", "d", "a"]


def test_best_fit_tries_the_smallest_room_that_still_fits() -> None:
    lines = [
        make_line("big", limit=1_000_000),
        make_line("snug", limit=100_000, reserved=60_000, drawn=20_000),
        make_line("medium", limit=50_000),
        make_line("too-small", limit=100_000, drawn=95_000),
    ]

    assert ranked_ids(lines, Strategy.BEST_FIT, make_order(amount=10_000)) == [
        "snug",
        "medium",
        "big",
    ]


def test_best_fit_ties_go_to_priority_then_line_id() -> None:
    lines = [
        make_line("c", limit=50_000, priority=1),
        make_line("b", limit=50_000, priority=2),
        make_line("a", limit=50_000, priority=2),
    ]

    assert ranked_ids(lines, Strategy.BEST_FIT) == ["c", "a", "b"]


def test_weighted_starts_with_the_heaviest_line_when_nothing_was_matched_yet() -> None:
    lines = [make_line("a", weight=30), make_line("b", weight=60), make_line("c", weight=10)]

    assert ranked_ids(lines, Strategy.WEIGHTED, matched_volume={}) == ["b", "a", "c"]


def test_weighted_tries_the_line_furthest_below_its_share_first() -> None:
    lines = [make_line("a", weight=60), make_line("b", weight=30), make_line("c", weight=10)]
    # Shares 0.70 / 0.20 / 0.10 against targets 0.60 / 0.30 / 0.10.
    volume = {"a": 70_000, "b": 20_000, "c": 10_000}

    assert ranked_ids(lines, Strategy.WEIGHTED, matched_volume=volume) == ["b", "c", "a"]


def test_weighted_exact_share_ties_go_to_priority_then_line_id() -> None:
    lines = [
        make_line("d", weight=20, priority=5),
        make_line("c", weight=10, priority=5),
        make_line("b", weight=10, priority=5),
        make_line("a", weight=30, priority=9),
    ]
    # Every line holds exactly its share, in sevenths: a tie only exact arithmetic sees.
    volume = {"a": 3_000, "b": 1_000, "c": 1_000, "d": 2_000}

    assert ranked_ids(lines, Strategy.WEIGHTED, matched_volume=volume) == ["b", "c", "d", "a"]


def test_weighted_puts_lines_of_weight_zero_last() -> None:
    lines = [
        make_line("zero-b", weight=0, priority=1),
        make_line("zero-a", weight=0, priority=1),
        make_line("full", weight=10, priority=9),
    ]
    volume = {"full": 1_000_000}

    assert ranked_ids(lines, Strategy.WEIGHTED, matched_volume=volume) == [
        "full",
        "zero-a",
        "zero-b",
    ]


def test_weighted_with_every_weight_zero_falls_back_to_priority() -> None:
    lines = [make_line("a", weight=0, priority=2), make_line("b", weight=0, priority=1)]

    assert ranked_ids(lines, Strategy.WEIGHTED) == ["b", "a"]


def test_weighted_shares_count_only_the_eligible_lines() -> None:
    lines = [
        make_line("a", weight=60),
        make_line("b", weight=40),
        make_line("closed", weight=100, status="PAUSED"),
    ]
    # Among a and b the shares are 0.75 / 0.25, so b is behind; counting the paused
    # line's weight and volume would put a behind instead.
    volume = {"a": 300, "b": 100, "closed": 1_000_000}

    assert ranked_ids(lines, Strategy.WEIGHTED, matched_volume=volume) == ["b", "a"]


def test_weighted_routing_converges_on_the_target_shares() -> None:
    lines = [make_line("a", weight=60), make_line("b", weight=30), make_line("c", weight=10)]
    volume: Counter[str] = Counter()

    for _ in range(100):
        chosen = ranked_ids(lines, Strategy.WEIGHTED, matched_volume=volume)[0]
        volume[chosen] += 10_000

    assert volume == {"a": 600_000, "b": 300_000, "c": 100_000}


def test_weighted_refuses_a_negative_matched_volume() -> None:
    with pytest.raises(ValueError, match="never negative"):
        ranked_ids([make_line("a")], Strategy.WEIGHTED, matched_volume={"a": -1})


# ------------------------------------------------------------------ the ranking


def test_the_ranking_lists_every_line_with_its_outcome() -> None:
    lines = [
        make_line("trust-b", max_amount=1_000_000, priority=1),
        make_line("bank-a-consumer", priority=10),
        make_line("bank-c", priority=5),
        make_line("bank-d", status="PAUSED"),
    ]

    ranking = rank(lines, make_order(amount=1_250_000), policy(), NOW)

    assert ranking.strategy is Strategy.PRIORITY
    assert [line.line_id for line in ranking.lines] == ["bank-c", "bank-a-consumer"]
    assert ranking.candidates == (
        Evaluation("bank-c", Outcome.ELIGIBLE),
        Evaluation("bank-a-consumer", Outcome.ELIGIBLE),
        # Lines that cannot take it follow in the policy's order as well (priority 1 first).
        Evaluation("trust-b", Outcome.AMOUNT_ABOVE_MAX, "amount above maxAmount 1000000"),
        Evaluation("bank-d", Outcome.LINE_PAUSED, "line is PAUSED"),
    )


def test_the_ranking_skips_lines_that_declined_the_order_before() -> None:
    lines = [make_line("a", priority=1), make_line("b", priority=2)]

    ranking = rank(lines, make_order(), policy(), NOW, excluded_line_ids={"a"})

    assert [line.line_id for line in ranking.lines] == ["b"]
    assert ranking.candidates[1] == Evaluation(
        "a", Outcome.EXCLUDED, "line declined this order before"
    )


def test_the_ranking_keeps_to_the_policys_line_ids() -> None:
    lines = [make_line("a", priority=1), make_line("b", priority=2), make_line("c", priority=3)]

    ranking = rank(lines, make_order(), policy(line_ids=["c", "b"]), NOW)

    assert [line.line_id for line in ranking.lines] == ["b", "c"]
    assert ranking.candidates[2] == Evaluation(
        "a", Outcome.NOT_IN_POLICY, "line not in the routing policy"
    )


def test_the_ranking_with_no_eligible_line_is_empty_but_explains_each() -> None:
    lines = [make_line("a", currency="USD"), make_line("b", limit=1)]

    ranking = rank(lines, make_order(), policy(), NOW)

    assert ranking.lines == ()
    assert [candidate.outcome for candidate in ranking.candidates] == [
        Outcome.CURRENCY_MISMATCH,
        Outcome.INSUFFICIENT_CAPACITY,
    ]


def test_a_line_given_twice_is_a_bug() -> None:
    with pytest.raises(ValueError, match="given twice"):
        rank([make_line("a"), make_line("a")], make_order(), policy(), NOW)


MIXED_LINES = [
    make_line("a", priority=3, apr_bps=900, weight=20, limit=60_000),
    make_line("b", priority=1, apr_bps=900, weight=20, limit=60_000),
    make_line("c", priority=1, apr_bps=1500, weight=60, limit=20_000),
    make_line("d", priority=2, apr_bps=700, weight=0, limit=1_000_000),
    make_line("e", priority=1, max_amount=5_000),
    make_line("f", priority=1, status="PAUSED"),
    make_line("g", priority=2, apr_bps=900, weight=20, limit=60_000),
]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.PRIORITY, ["b", "c", "d", "g", "a"]),
        (Strategy.LOWEST_COST, ["d", "b", "g", "a", "c"]),
        (Strategy.BEST_FIT, ["c", "b", "g", "a", "d"]),
        (Strategy.WEIGHTED, ["b", "c", "g", "a", "d"]),
    ],
)
@given(shuffled=st.permutations(MIXED_LINES))
def test_the_same_input_in_any_order_gives_the_same_ranking(
    strategy: Strategy, expected: list[str], shuffled: list[Line]
) -> None:
    # Every weighted line is exactly on its share, so WEIGHTED falls back to priority.
    volume = {"a": 5_000, "b": 5_000, "c": 15_000, "g": 5_000}

    ranking = rank(shuffled, make_order(), policy(strategy), NOW, matched_volume=volume)

    assert [line.line_id for line in ranking.lines] == expected
    assert ranking == rank(MIXED_LINES, make_order(), policy(strategy), NOW, matched_volume=volume)


# ------------------------------------------------------------------ the policy


def test_a_policy_reads_its_camel_case_body() -> None:
    read = RoutingPolicy.model_validate({"strategy": "WEIGHTED", "lineIds": ["a", "b"]})

    assert read == RoutingPolicy(strategy=Strategy.WEIGHTED, line_ids=["a", "b"])
    assert RoutingPolicy.model_validate({"strategy": "BEST_FIT"}).line_ids == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"strategy": "RANDOM"}, ("strategy",)),
        ({}, ("strategy",)),
        ({"strategy": "PRIORITY", "lineIds": ["a", "a"]}, ("lineIds",)),
        ({"strategy": "PRIORITY", "lineIds": ["a b"]}, ("lineIds", 0)),
        ({"strategy": "PRIORITY", "lineIds": [f"l{n}" for n in range(201)]}, ("lineIds",)),
        ({"strategy": "PRIORITY", "fallback": "PRIORITY"}, ("fallback",)),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(
    body: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as refused:
        RoutingPolicy.model_validate(body)

    assert [error["loc"] for error in refused.value.errors()] == [loc]
