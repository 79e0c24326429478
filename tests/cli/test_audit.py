"""The invariant of docs/design.md, checked on synthetic lines and orders."""

from typing import Any

from fundrouter_cli.audit import audit


def line(line_id: str = "l1", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"lineId": line_id, "limit": 1000, "reserved": 300, "drawn": 200}
    base["configVersion"] = 1
    base |= changes
    base.setdefault("available", base["limit"] - base["reserved"] - base["drawn"])
    return base


def order(order_id: str, status: str, line_id: str | None = "l1", **changes: Any) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "tenantId": "t",
        "status": status,
        "lineId": line_id,
        "amount": 100,
        "reserved": 0,
        "outstanding": 0,
    } | changes


BALANCED = [
    order("m1", "MATCHED", reserved=100),
    order("a1", "APPROVED", reserved=200),
    order("d1", "DISBURSED", outstanding=150),
    order("d2", "DISBURSED", outstanding=50),
    order("r1", "REPAID"),
    order("c1", "CANCELLED"),
    order("u1", "UNMATCHED", line_id=None),
    order("e1", "EXPIRED"),
]


def rules(report: Any) -> list[str]:
    return [v.rule for v in report.violations]


def test_balanced_books_pass() -> None:
    report = audit([line()], BALANCED)

    assert report.ok, report.violations
    assert (report.lines_checked, report.orders_checked) == (1, len(BALANCED))
    assert report.notes == []


def test_reserved_that_drifted_from_its_orders_is_a_violation() -> None:
    report = audit([line(reserved=310)], BALANCED)

    assert rules(report) == ["reserved != sum of MATCHED/APPROVED reservations"]
    assert "line reserved 310, its 4 holding orders 300 (difference +10)" in str(
        report.violations[0]
    )


def test_drawn_that_drifted_from_outstanding_is_a_violation() -> None:
    orders = [*BALANCED[:3], order("d2", "DISBURSED", outstanding=40), *BALANCED[4:]]

    assert rules(audit([line()], orders)) == ["drawn != sum of DISBURSED outstanding"]


def test_over_allocation_is_a_violation_unless_the_limit_was_lowered() -> None:
    over = audit([line(limit=400)], BALANCED)
    lowered = audit([line(limit=400, configVersion=3)], BALANCED)

    assert rules(over) == ["over-allocated"]
    assert lowered.ok
    assert "operator lowered the limit" in lowered.notes[0]


def test_a_line_over_its_limit_by_a_late_disbursement_is_noted_not_a_violation() -> None:
    late = [*BALANCED[:3], order("d2", "DISBURSED", outstanding=50, overLimit=True)]
    over = audit([line(limit=400)], late)

    assert over.ok, over.violations
    assert "disbursed late beyond it (overLimit)" in over.notes[0]


def test_available_must_be_what_is_left() -> None:
    assert rules(audit([line(available=999)], BALANCED)) == [
        "available != limit - reserved - drawn"
    ]


def test_a_finished_order_that_still_holds_capacity_is_a_violation() -> None:
    orders = [*BALANCED, order("c2", "CANCELLED", reserved=5)]

    report = audit([line()], orders)

    assert "holds capacity when done" in rules(report)


def test_an_order_holding_capacity_without_a_line_is_a_violation() -> None:
    report = audit([], [order("m9", "MATCHED", line_id=None, reserved=10)])

    assert rules(report) == ["holds no line"]


def test_a_disbursed_order_still_reserving_is_a_violation() -> None:
    report = audit([], [order("d9", "DISBURSED", line_id="x", outstanding=5, reserved=5)])

    assert rules(report) == ["reserved"]


def test_an_order_listed_twice_is_a_violation() -> None:
    report = audit([], [order("m1", "UNMATCHED", None), order("m1", "UNMATCHED", None)])

    assert rules(report) == ["listed more than once"]


def test_orders_on_other_lines_and_waiting_orders_are_noted_not_counted() -> None:
    orders = [
        *BALANCED,
        order("x1", "MATCHED", "elsewhere", reserved=70),
        order("w", "RECEIVED", None),
    ]

    report = audit([line()], orders)

    assert report.ok
    assert report.notes == [
        "1 orders hold lines outside the audit (not counted)",
        "1 orders still RECEIVED: not a quiescent point",
    ]


def test_an_unknown_status_is_reported() -> None:
    assert rules(audit([], [order("z", "LOST")])) == ["unknown status"]
