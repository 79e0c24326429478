"""The demo's and the load generator's data and plans: valid for the API, varied,
deterministic for a seed; latencies and reasons read off orders."""

import random
import re
from collections import Counter
from typing import Any

import pytest
from fundrouter.domain.lifecycle import OrderEvent
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import OrderRequest
from fundrouter_cli import demo, load
from fundrouter_cli.workload import (
    LifecycleMix,
    count_steps,
    decision_latency_ms,
    pacer,
    plan_lifecycle,
    run_id,
    unmatched_reasons,
)

from tests.cli.fake_api import order


def test_demo_lines_are_valid_configurations_for_the_api() -> None:
    configs = demo.line_configs()

    for _, body in configs:
        LineConfig.model_validate(body)
    funders = {body["funderId"] for _, body in configs}
    assert len(funders) >= 5
    assert any("dailyLimit" in body for _, body in configs)
    assert any(body.get("status") == "PAUSED" for _, body in configs)
    assert len({body["aprBps"] for _, body in configs}) == len(configs)


def test_demo_orders_are_valid_varied_and_repeatable() -> None:
    orders = demo.demo_orders("demo-x", 300, random.Random(1))

    for body in orders:
        OrderRequest.model_validate(body)
    assert orders == demo.demo_orders("demo-x", 300, random.Random(1))
    assert len({o["orderId"] for o in orders}) == 300
    products = Counter(o["product"] for o in orders)
    assert set(products) == {"installment", "consumer-cash", "auto-loan", "sme-working-capital"}
    assert products["installment"] > products["sme-working-capital"]
    grades = {o["customer"]["creditGrade"] for o in orders}
    assert grades == {"A", "B", "C", "D", "E"}
    amounts = [o["amount"] for o in orders]
    assert min(amounts) < 1_000_000  # under 10,000 yuan
    assert max(amounts) > 100_000_000  # over a million yuan


def test_every_demo_product_has_a_line_that_can_take_it() -> None:
    offered = {p for _, body in demo.line_configs() for p in body.get("products", [])}

    assert {p.name for p in demo.PRODUCTS} <= offered


@pytest.mark.parametrize("count", [1, 40, 500])
def test_load_lines_hold_less_than_the_run_asks_for(count: int) -> None:
    lines = load.load_lines("load-x", count)
    orders = load.load_orders("load-x", count, random.Random(2))

    for _, body in lines:
        LineConfig.model_validate(body)
        assert body["products"] == ["load-x"]
    for body in orders:
        OrderRequest.model_validate(body)
    capacity = sum(body["limit"] for _, body in lines)
    if count >= 40:
        assert capacity < sum(o["amount"] for o in orders)
    assert any("dailyLimit" in body for _, body in lines)


def test_run_ids_are_short_valid_ids_and_unique() -> None:
    ids = {run_id("load") for _ in range(50)}

    assert len(ids) == 50
    assert all(re.fullmatch(r"load-[0-9a-z]{6}[0-9a-f]{4}", i) for i in ids)


def matched(n: int, reserved: int = 1_000_000) -> list[dict[str, Any]]:
    return [order(f"o-{i:03d}", reserved=reserved, amount=reserved) for i in range(n)]


def test_lifecycle_plans_are_valid_event_sequences() -> None:
    plans = plan_lifecycle(matched(400), random.Random(3), LifecycleMix())

    allowed = {
        ("CANCELLED",),
        ("APPROVED", "CANCELLED"),
        ("DECLINED",),
        ("APPROVED", "DECLINED"),
        ("APPROVED",),
        ("APPROVED", "DISBURSED"),
        ("APPROVED", "DISBURSED", "REPAID"),
        ("APPROVED", "DISBURSED", "REPAID", "REPAID"),
    }
    for order_id, steps in plans.items():
        assert tuple(s.type for s in steps) in allowed, order_id
        drawn = next((s.amount for s in steps if s.type == "DISBURSED"), None)
        if drawn is not None:
            assert 0 < drawn <= 1_000_000
            repaid = sum(s.amount or 0 for s in steps if s.type == "REPAID")
            assert repaid <= drawn
        for step in steps:
            assert step.line_id == "bank-a-consumer"  # every event names the order's line
            body: dict[str, Any] = {"eventId": "e-1", "type": step.type}
            if step.amount is not None:
                body["amount"] = step.amount
            OrderEvent.model_validate(body | {"lineId": step.line_id})
    kinds = count_steps(plans)
    assert set(kinds) == {"APPROVED", "CANCELLED", "DECLINED", "DISBURSED", "REPAID"}
    assert 0.6 < len(plans) / 400 < 0.85  # the rest stay MATCHED


def test_lifecycle_plans_only_touch_matched_orders_and_repeat_for_a_seed() -> None:
    orders = [*matched(50), order("u", status="UNMATCHED", reserved=0), order("z", reserved=0)]

    first = plan_lifecycle(orders, random.Random(9), LifecycleMix())

    assert set(first) <= {o["orderId"] for o in orders[:50]}
    assert first == plan_lifecycle(list(reversed(orders)), random.Random(9), LifecycleMix())


def test_decision_latency_comes_from_the_orders_own_timestamps() -> None:
    assert decision_latency_ms(order("a")) == pytest.approx(40.0)
    waiting = order("b", history=[{"status": "RECEIVED", "at": "2026-11-25T00:00:00.000Z"}])
    assert decision_latency_ms(waiting) is None


def test_unmatched_orders_are_explained_by_the_line_that_came_closest() -> None:
    def unmatched(*codes: str) -> dict[str, Any]:
        candidates = [
            {"lineId": f"l{i}", "outcome": "INELIGIBLE", "code": c} for i, c in enumerate(codes)
        ]
        return order(
            "x", status="UNMATCHED", decision={"strategy": "PRIORITY", "candidates": candidates}
        )

    reasons = unmatched_reasons(
        [
            unmatched("PRODUCT_NOT_OFFERED", "DAILY_LIMIT_REACHED", "AMOUNT_ABOVE_MAX"),
            unmatched("PRODUCT_NOT_OFFERED", "CREDIT_GRADE_NOT_ACCEPTED"),
            order("m"),
            order("n", status="UNMATCHED", decision={"strategy": "PRIORITY", "candidates": []}),
        ]
    )

    assert reasons == {"DAILY_LIMIT_REACHED": 1, "CREDIT_GRADE_NOT_ACCEPTED": 1, "NO_LINES": 1}


def test_lines_for_other_products_do_not_explain_an_unmatched_order() -> None:
    lines = [
        {"lineId": "auto", "products": ["auto-loan"], "currency": "CNY"},
        {"lineId": "sme", "products": ["sme"], "currency": "CNY"},
    ]

    def unmatched(product: str, auto: str) -> dict[str, Any]:
        candidates = [
            {"lineId": "auto", "outcome": "INELIGIBLE", "code": auto},
            {"lineId": "sme", "outcome": "INELIGIBLE", "code": "TERM_NOT_OFFERED"},
        ]
        decision = {"strategy": "PRIORITY", "candidates": candidates}
        return order("x", status="UNMATCHED", product=product, decision=decision)

    reasons = unmatched_reasons(
        [unmatched("auto-loan", "AMOUNT_ABOVE_MAX"), unmatched("boat", "PRODUCT_NOT_OFFERED")],
        lines,
    )

    assert reasons == {"AMOUNT_ABOVE_MAX": 1, "PRODUCT_NOT_OFFERED": 1}


def test_a_rate_spaces_the_items_from_the_first_one() -> None:
    now, slept = [100.0], []
    wait = pacer(4.0, clock=lambda: now[0], sleep=slept.append)

    for index in range(3):
        wait(index)
        now[0] += 0.1  # each item's own work
    wait(9)  # due 2.25 s after the start, asked at 0.3 s
    unpaced = pacer(None, clock=lambda: now[0], sleep=slept.append)
    unpaced(5)

    assert slept == pytest.approx([0.0, 0.15, 0.3, 1.95])


def test_load_lines_can_hold_more_than_the_run_asks_for() -> None:
    orders = load.load_orders("load-x", 500, random.Random(2))

    lines = load.load_lines("load-x", 500, room=3.0)

    first = lines[0][1]
    assert first["limit"] > sum(o["amount"] for o in orders)  # it takes every order
    assert "dailyLimit" not in first
