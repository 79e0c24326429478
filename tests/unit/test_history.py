"""The bounded history, pure: what the order keeps, what leaves it and with which
number, orders stored before the bound, and the previous status it no longer shows."""

from datetime import UTC, datetime, timedelta

from fundrouter.domain.lifecycle import OrderEvent, apply_event, matched
from fundrouter.domain.orders import (
    MAX_SPILL,
    RECENT_HISTORY,
    Decision,
    Order,
    OrderStatus,
    spilled_history,
)
from fundrouter.service.tracking import current_status_event

from tests.support.factories import order_request

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def disbursed() -> Order:
    request = order_request(orderId="loan-1", amount=1_000, customer={"id": "c-1"}, metadata={})
    order = matched(
        Order.received("tenant-a", request, NOW),
        line_id="line-a",
        funder_id="bank",
        now=NOW,
        hold_expires_at=NOW + timedelta(minutes=15),
        claim_day="2026-11-24",
        decision=Decision(strategy="PRIORITY", candidates=[]),
    )
    return event(order, "DISBURSED", 1_000, "d")


def event(order: Order, kind: str, amount: int | None, event_id: str) -> Order:
    body = {"eventId": event_id, "type": kind, "amount": amount}
    return apply_event(order, OrderEvent.model_validate(body), NOW).order


def repaid(order: Order, times: int) -> list[Order]:
    orders = [order]
    for number in range(times):
        orders.append(event(orders[-1], "REPAID", 1, f"r-{number}"))
    return orders


def test_the_order_keeps_its_newest_entries_and_numbers_the_one_that_leaves() -> None:
    orders = repaid(disbursed(), RECENT_HISTORY - 2)  # orders[k] has 3 + k entries
    full, after = orders[RECENT_HISTORY - 3], orders[RECENT_HISTORY - 2]

    assert (len(full.history), full.history_total) == (RECENT_HISTORY, RECENT_HISTORY)
    assert spilled_history(orders[RECENT_HISTORY - 4], full) == []
    assert spilled_history(full, after) == [(0, full.history[0])]
    assert (len(after.history), after.history_total) == (RECENT_HISTORY, RECENT_HISTORY + 1)
    assert after.history == [*full.history[1:], after.history[-1]]
    assert spilled_history(after, event(after, "REPAID", 1, "next")) == [(1, after.history[0])]


def test_an_order_stored_with_every_entry_is_counted_and_sheds_a_bounded_part() -> None:
    order = disbursed()
    repayment = event(order, "REPAID", 1, "r").history[-1]
    stored = order.model_dump(mode="json", by_alias=True, exclude={"history_total"})
    del stored["previousStatus"]
    whole = [entry.model_dump(mode="json", by_alias=True) for entry in order.history]
    whole += [repayment.model_dump(mode="json", by_alias=True)] * 150
    legacy = Order.model_validate(stored | {"history": whole})

    assert (legacy.history_total, legacy.previous_status) == (153, OrderStatus.MATCHED)
    after = event(legacy, "REPAID", 1, "next")
    assert [n for n, _ in spilled_history(legacy, after)] == list(range(MAX_SPILL))
    assert (len(after.history), after.history_total) == (154 - MAX_SPILL, 154)


def test_a_republished_status_names_the_status_before_many_partial_repayments() -> None:
    order = repaid(disbursed(), RECENT_HISTORY + 5)[-1]

    assert {entry.status for entry in order.history} == {OrderStatus.DISBURSED}
    assert current_status_event(order).from_status is OrderStatus.MATCHED
