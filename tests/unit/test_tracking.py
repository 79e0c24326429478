"""Tracking, pure: which stream records are status changes, the OrderStatusChanged
detail each becomes, publishing a batch through the port, and the metric figures."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.persistence.orders import ORDER_SK
from fundrouter.service.tracking import (
    ORDER_ITEM_SORT_KEY,
    OrderStatusChanged,
    Skip,
    figures,
    publish_changes,
    skip_before_decoding,
    status_change,
)

from tests.support.factories import order_request

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def new_order(order_id: str = "shop-1", amount: int = 1_250_000) -> Order:
    request = order_request(orderId=order_id, amount=amount, metadata={})
    return Order.received("tenant-a", request, NOW)


def moved(order: Order, status: OrderStatus, seconds: int = 1, **changes: Any) -> Order:
    return order.model_copy(
        update={
            "status": status,
            "updated_at": order.updated_at + timedelta(seconds=seconds),
            "version": order.version + 1,
        }
        | changes
    )


def matched(order: Order, line_id: str = "bank-a-consumer") -> Order:
    return moved(
        order, OrderStatus.MATCHED, line_id=line_id, funder_id="bank-a", reserved=order.amount
    )


def change_of(old: Order | None, new: Order) -> OrderStatusChanged:
    found = status_change(old, new)
    assert isinstance(found, OrderStatusChanged)
    return found


class FakePublisher:
    """Records what it publishes; refuses the positions it is told to."""

    def __init__(self, refuse: dict[int, str] | None = None) -> None:
        self.published: list[OrderStatusChanged] = []
        self.calls = 0
        self._refuse = refuse or {}

    def publish(self, changes: Sequence[OrderStatusChanged]) -> dict[int, str]:
        self.calls += 1
        self.published += [c for i, c in enumerate(changes) if i not in self._refuse]
        return dict(self._refuse)


# ---------------------------------------------------------------- which records count


def test_the_service_knows_order_items_by_the_same_sort_key_as_the_table() -> None:
    assert ORDER_ITEM_SORT_KEY == ORDER_SK


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY", "REMOVE"])
def test_items_that_are_not_orders_are_skipped_whatever_happened_to_them(event_name: str) -> None:
    assert skip_before_decoding(event_name, "EVENT#evt-77") is Skip.NOT_AN_ORDER


def test_a_removed_order_is_skipped() -> None:
    assert skip_before_decoding("REMOVE", "ORDER") is Skip.REMOVED


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_inserted_and_modified_orders_are_looked_at(event_name: str) -> None:
    assert skip_before_decoding(event_name, "ORDER") is None


def test_a_write_that_keeps_the_status_is_no_status_change() -> None:
    disbursed = moved(matched(new_order()), OrderStatus.DISBURSED, outstanding=1_250_000)
    repaid_in_part = disbursed.model_copy(update={"outstanding": 250_000, "version": 9})

    assert status_change(disbursed, repaid_in_part) is Skip.STATUS_UNCHANGED


# ---------------------------------------------------------------- the detail


def test_a_new_order_changes_from_nothing_to_received() -> None:
    change = change_of(None, new_order())

    assert change.detail() == {
        "tenantId": "tenant-a",
        "orderId": "shop-1",
        "from": None,
        "to": "RECEIVED",
        "lineId": None,
        "funderId": None,
        "amount": 1_250_000,
        "currency": "CNY",
        "reserved": 0,
        "outstanding": 0,
        "at": "2026-11-24T10:00:00.000Z",
        "version": 1,
    }


def test_a_match_names_the_line_funder_and_reservation_at_the_new_version() -> None:
    received = new_order()

    change = change_of(received, matched(received))

    assert change.detail() == {
        "tenantId": "tenant-a",
        "orderId": "shop-1",
        "from": "RECEIVED",
        "to": "MATCHED",
        "lineId": "bank-a-consumer",
        "funderId": "bank-a",
        "amount": 1_250_000,
        "currency": "CNY",
        "reserved": 1_250_000,
        "outstanding": 0,
        "at": "2026-11-24T10:00:01.000Z",
        "version": 2,
    }


def test_the_detail_is_plain_json_with_integer_money() -> None:
    change = change_of(None, new_order(amount=10**12))

    decoded = json.loads(json.dumps(change.detail()))

    assert decoded["amount"] == 10**12
    assert all(type(decoded[k]) is int for k in ("amount", "reserved", "outstanding", "version"))


def test_the_same_write_seen_twice_gives_the_same_event_and_dedup_key() -> None:
    received = new_order()
    first, again = change_of(received, matched(received)), change_of(received, matched(received))

    assert first == again
    assert first.dedup_key() == ("tenant-a", "shop-1", 2)


def test_a_requeue_after_decline_is_a_change_back_to_received() -> None:
    was_matched = matched(new_order())
    requeued = moved(
        was_matched,
        OrderStatus.RECEIVED,
        line_id=None,
        funder_id=None,
        reserved=0,
        declined_line_ids=["bank-a-consumer"],
    )

    change = change_of(was_matched, requeued)

    assert (change.from_status, change.to_status, change.line_id, change.version) == (
        OrderStatus.MATCHED,
        OrderStatus.RECEIVED,
        None,
        3,
    )


# ---------------------------------------------------------------- publishing a batch


def test_a_batch_is_published_in_one_call_and_refusals_are_named_by_record() -> None:
    changes = {f"seq-{i}": change_of(None, new_order(f"shop-{i}")) for i in range(3)}
    publisher = FakePublisher(refuse={1: "ThrottlingException: slow down"})

    refused = publish_changes(publisher, changes)

    assert refused == {"seq-1": "ThrottlingException: slow down"}
    assert publisher.calls == 1
    assert [c.order_id for c in publisher.published] == ["shop-0", "shop-2"]


def test_an_empty_batch_publishes_nothing_and_refuses_nothing() -> None:
    publisher = FakePublisher()

    assert publish_changes(publisher, {}) == {}
    assert publisher.published == []


# ---------------------------------------------------------------- figures


def test_figures_count_statuses_matched_volume_per_line_and_unmatched() -> None:
    a, b, c = new_order("a", 100), new_order("b", 250), new_order("c", 7)
    changes = [
        change_of(a, matched(a, "line-1")),
        change_of(b, matched(b, "line-1")),
        change_of(c, moved(c, OrderStatus.UNMATCHED)),
        change_of(None, new_order("d")),
    ]

    summary = figures(changes)

    assert dict(summary.by_status) == {
        OrderStatus.MATCHED: 2,
        OrderStatus.UNMATCHED: 1,
        OrderStatus.RECEIVED: 1,
    }
    assert {k: (v.orders, v.volume) for k, v in summary.matched_by_line.items()} == {
        "line-1": (2, 350)
    }
    assert (summary.matched, summary.unmatched) == (2, 1)
