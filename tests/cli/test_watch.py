"""What `watch` reports between two polls."""

from typing import Any

from fundrouter_cli.watch import Seen, changes, describe, snapshot

from tests.cli.fake_api import order


def received(order_id: str) -> dict[str, Any]:
    return order(
        order_id,
        status="RECEIVED",
        lineId=None,
        funderId=None,
        reserved=0,
        version=1,
        history=[{"status": "RECEIVED", "at": "2026-11-25T00:00:00.000Z"}],
    )


def test_nothing_moved_nothing_reported() -> None:
    orders = [order("a"), received("b")]

    found, state = changes(snapshot(orders), orders)

    assert found == []
    assert state == snapshot(orders)


def test_a_status_change_names_both_statuses_and_the_line() -> None:
    before = snapshot([received("b")])

    found, state = changes(before, [order("b")])

    assert [(c.order_id, c.before, c.after, c.line_id) for c in found] == [
        ("b", "RECEIVED", "MATCHED", "bank-a-consumer")
    ]
    assert state["b"] == Seen("MATCHED", 2, 2)


def test_every_status_between_two_polls_is_reported_in_order() -> None:
    later = order(
        "b",
        status="DISBURSED",
        version=4,
        history=[
            {"status": "RECEIVED", "at": "2026-11-25T00:00:00.000Z"},
            {"status": "MATCHED", "at": "2026-11-25T00:00:00.040Z", "lineId": "l1"},
            {"status": "APPROVED", "at": "2026-11-25T00:00:01.000Z", "event": "APPROVED"},
            {
                "status": "DISBURSED",
                "at": "2026-11-25T00:00:02.000Z",
                "event": "DISBURSED",
                "amount": 1_000_000,
            },
        ],
    )

    found, _ = changes(snapshot([received("b")]), [later])

    assert [(c.before, c.after) for c in found] == [
        ("RECEIVED", "MATCHED"),
        ("MATCHED", "APPROVED"),
        ("APPROVED", "DISBURSED"),
    ]
    assert "APPROVED → DISBURSED" in describe(found[-1]).plain
    assert "(DISBURSED 10,000.00)  v4" in describe(found[-1]).plain
    assert [c.version for c in found] == [None, None, 4]  # only the latest has a known version


def test_a_new_order_is_reported_from_its_first_status_oldest_first() -> None:
    found, state = changes({}, [order("new"), received("newer")])

    assert [(c.order_id, c.before, c.after) for c in found] == [
        ("new", None, "RECEIVED"),
        ("newer", None, "RECEIVED"),
        ("new", "RECEIVED", "MATCHED"),
    ]
    assert describe(found[0]).plain.startswith("00:00:00.000 new ")
    assert set(state) == {"new", "newer"}


def test_a_new_version_without_a_new_status_is_still_reported() -> None:
    before = {"a": Seen("DISBURSED", 3, 2)}
    repaid_in_part = order("a", status="DISBURSED", version=4)  # history not grown

    found, _ = changes(before, [repaid_in_part])

    assert [(c.before, c.after, c.version) for c in found] == [("DISBURSED", "DISBURSED", 4)]


def test_orders_no_longer_listed_are_remembered() -> None:
    _, state = changes({"gone": Seen("MATCHED", 2, 2)}, [order("a")])

    assert "gone" in state


def repayments(first: int, last: int) -> list[dict[str, Any]]:
    return [
        {"status": "DISBURSED", "at": f"2026-11-25T00:{n // 60:02d}:{n % 60:02d}.000Z"}
        | {"event": "REPAID", "amount": n}
        for n in range(first, last)
    ]


def test_a_loan_whose_history_is_longer_than_the_resource_shows_reports_only_whats_new() -> None:
    """The resource lists the 20 newest entries; historyTotal counts them all."""
    seen = order("b", status="DISBURSED", version=40, history=repayments(20, 40))
    later = order("b", status="DISBURSED", version=43, history=repayments(23, 43))

    found, state = changes(snapshot([seen | {"historyTotal": 40}]), [later | {"historyTotal": 43}])

    assert [(c.before, c.after, c.amount) for c in found] == [
        ("DISBURSED", "DISBURSED", 40),
        ("DISBURSED", "DISBURSED", 41),
        ("DISBURSED", "DISBURSED", 42),
    ]
    assert state["b"] == Seen("DISBURSED", 43, 43)
