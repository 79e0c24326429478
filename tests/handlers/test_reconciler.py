"""The ReconcilerFunction on moto: holds expire by time, not by TTL; orders the
stream left waiting are matched; drift between a line's counters and its orders is
reported with the line and the orders, and never silently fixed."""

import pytest
from fundrouter.persistence.orders import REDRIVE_AFTER

from tests.conftest import FakeLambdaContext, load_event
from tests.support.handlers import handler_module
from tests.support.world import ORDER_ID, TENANT, World

reconciler = handler_module("reconciler", "reconciler_handler")


@pytest.fixture
def world(orders_table: str) -> World:
    return World(orders_table)


def test_a_hold_past_its_expiry_is_expired_and_its_capacity_released(world: World) -> None:
    world.matched_order()
    world.clock.advance(901)  # holdSeconds 900

    summary = reconciler.handle(world.reconciler)

    order = world.orders.get(TENANT, ORDER_ID)
    assert order is not None
    assert (order.status.value, order.reserved) == ("EXPIRED", 0)
    assert summary["expired"] == [ORDER_ID]
    assert world.line() == (0, 0, 10_000_000)
    world.assert_invariant()


def test_a_hold_inside_its_time_is_left_alone(world: World) -> None:
    world.matched_order()
    world.clock.advance(600)
    before = world.everything()

    summary = reconciler.handle(world.reconciler)

    assert summary["expired"] == []
    assert world.everything() == before


def test_a_disbursed_order_never_expires(world: World) -> None:
    world.matched_order()
    world.call("order_event_disbursed_partly")
    world.clock.advance(3600)

    summary = reconciler.handle(world.reconciler)

    assert summary["expired"] == []
    assert world.line() == (0, 1_000_000, 9_000_000)


def test_an_order_the_stream_never_delivered_is_matched_by_the_reconciler(world: World) -> None:
    assert world.call("submit_order")[0] == 202  # no matcher runs: the record was lost
    world.clock.advance(REDRIVE_AFTER.total_seconds() + 1)

    summary = reconciler.handle(world.reconciler)

    order = world.orders.get(TENANT, ORDER_ID)
    assert order is not None
    assert (order.status.value, order.line_id) == ("MATCHED", "bank-a-consumer")
    assert summary["redriven"] == {ORDER_ID: "MATCHED"}
    world.assert_invariant()


def test_a_recent_order_is_left_to_the_stream(world: World) -> None:
    assert world.call("submit_order")[0] == 202

    summary = reconciler.handle(world.reconciler)

    assert summary["redriven"] == {}


def test_drift_is_reported_with_the_line_and_its_orders_and_not_fixed(world: World) -> None:
    world.matched_order()
    world.client.update_item(  # a counter moved outside any transaction: a bug or a hand
        TableName="fundrouter-test-lines",
        Key={"pk": {"S": "LINE#bank-a-consumer"}, "sk": {"S": "LINE"}},
        UpdateExpression="SET reserved = reserved + :x, held = held + :x",
        ExpressionAttributeValues={":x": {"N": "5000"}},
    )

    summary = reconciler.handle(world.reconciler)

    assert summary["drift"] == [
        {
            "line_id": "bank-a-consumer",
            "reserved": 1_255_000,
            "expected_reserved": 1_250_000,
            "drawn": 0,
            "expected_drawn": 0,
            "orders": (f"{TENANT}/{ORDER_ID}",),
        }
    ]
    assert world.line()[0] == 1_255_000  # reported, never "fixed"
    assert summary["linesAudited"] == 2


def test_a_second_run_changes_nothing(world: World) -> None:
    world.matched_order()
    world.clock.advance(901)
    reconciler.handle(world.reconciler)
    before = world.everything()

    summary = reconciler.handle(world.reconciler)

    assert (summary["expired"], summary["redriven"], summary["drift"]) == ([], {}, [])
    assert world.everything() == before


def test_the_scheduled_event_sample_reaches_the_handler(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_TABLE_NAME", world.orders_table)
    monkeypatch.setenv("LINES_TABLE_NAME", "fundrouter-test-lines")
    reconciler.reconciler.cache_clear()
    try:
        summary = reconciler.handler(load_event("reconciler/schedule.json"), FakeLambdaContext())
    finally:
        reconciler.reconciler.cache_clear()

    assert summary["linesAudited"] == 2
