"""The ReconcilerFunction on moto: holds expire by time, not by TTL; orders the
stream left waiting are matched; drift between a line's counters and its orders is
reported with the line and the orders, and never silently fixed."""

import json
from typing import Any

import pytest
from fundrouter import bootstrap
from fundrouter.domain.lifecycle import expire
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.orders import DUE_SHARDS, REDRIVE_AFTER, order_pk
from fundrouter.service.auditing import AuditService
from fundrouter.service.ports import Commit

from tests.support.api import built_from_environment, serve
from tests.support.aws import FakeLambdaContext
from tests.support.events import load_event
from tests.support.faults import Injected, always, conflict, error
from tests.support.handlers import handler_module
from tests.support.metrics import emf_blobs, metric_values
from tests.support.moto_speed import speed_up_moto
from tests.support.world import LINES_TABLE, ORDER_ID, TENANT, World

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
    with built_from_environment():
        summary = reconciler.handler(load_event("reconciler/schedule.json"), FakeLambdaContext())

    assert summary["linesAudited"] == 2


# ---------------------------------------------------------------- one order never stops the run


def matched(world: World, order_id: str) -> None:
    event = load_event("api/submit_order.json")
    event["body"] = json.dumps(json.loads(event["body"]) | {"orderId": order_id})
    assert world.call(event)[0] == 202
    order = world.orders.get(TENANT, order_id)
    assert order is not None
    world.matcher.match(order)


def break_item(world: World, order_id: str, expression: str, **values: Any) -> None:
    world.client.update_item(
        TableName=world.orders_table,
        Key={"pk": {"S": order_pk(TENANT, order_id)}, "sk": {"S": "ORDER"}},
        UpdateExpression=expression,
        **({"ExpressionAttributeValues": values} if values else {}),
    )


def writes_order(order_id: str) -> Any:
    pk = order_pk(TENANT, order_id)
    return lambda request: request["TransactItems"][0]["Put"]["Item"]["pk"]["S"] == pk


def test_failing_orders_never_stop_the_others_expiring_nor_the_audit(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The failing orders are the oldest due, so they come first in every run.
    for order_id in ("o-contended", "o-no-claim-day", "o-garbled", "o-good-1", "o-good-2"):
        matched(world, order_id)
    Injected(world.client, "TransactWriteItems", always(conflict(3)), writes_order("o-contended"))
    break_item(world, "o-no-claim-day", "REMOVE claimDay")  # its release cannot be written
    break_item(world, "o-garbled", "SET amount = :x", **{":x": {"S": "lots"}})  # undecodable
    world.clock.advance(901)
    monkeypatch.setattr(bootstrap, "reconciler", lambda: world.reconciler)

    summary = reconciler.handler(load_event("reconciler/schedule.json"), FakeLambdaContext())

    assert summary["expired"] == ["o-good-1", "o-good-2"]
    assert sorted((f["kind"], f["subject"], f["error"]) for f in summary["failures"]) == [
        ("expire", f"{TENANT}/o-contended", "Contended"),
        ("expire", f"{TENANT}/o-no-claim-day", "CapacityDisagrees"),
        ("unreadable", f"{TENANT}/o-garbled", "ValidationError"),
    ]
    assert (summary["linesAudited"], summary["drift"]) == (2, [])
    metrics = metric_values(emf_blobs(capsys.readouterr().out))
    assert metrics[("ReconcileFailures", "")] == 3
    assert metrics[("ReconcileFailures", "kind=expire")] == 2
    assert metrics[("ReconcileFailures", "kind=unreadable")] == 1
    assert metrics[("ExpiredHolds", "")] == 2
    for order_id, status in (("o-contended", "MATCHED"), ("o-good-1", "EXPIRED")):
        order = world.orders.get(TENANT, order_id)
        assert order is not None
        assert order.status.value == status


def test_a_conflict_on_an_expiry_is_retried_within_the_run(world: World) -> None:
    world.matched_order()
    world.clock.advance(901)
    Injected(world.client, "TransactWriteItems", [conflict(3, at=1)])

    summary = reconciler.handle(world.reconciler)

    assert (summary["expired"], summary["failures"]) == ([ORDER_ID], [])
    world.assert_invariant()


def test_a_failed_listing_of_due_orders_still_audits_every_line(world: World) -> None:
    world.matched_order()
    world.clock.advance(901)
    Injected(
        world.client,
        "Query",
        always(error("ProvisionedThroughputExceededException"), times=10_000),
        lambda request: request.get("IndexName") == "byDue",
    )

    summary = reconciler.handle(world.reconciler)

    # Each shard of the index is named: one that fails hides no other's orders.
    assert [(f["kind"], f["subject"]) for f in summary["failures"]] == [
        ("due", f"DUE#{shard}") for shard in range(DUE_SHARDS)
    ]
    assert summary["linesAudited"] == 2


def test_a_line_whose_audit_fails_is_counted_and_the_others_audited(world: World) -> None:
    world.matched_order()
    Injected(
        world.client,
        "Query",
        always(error("InternalServerError")),
        lambda request: (
            request.get("ExpressionAttributeValues", {}).get(":line") == {"S": "trust-b"}
        ),
    )

    summary = reconciler.handle(world.reconciler)

    assert [(f["kind"], f["subject"]) for f in summary["failures"]] == [("audit", "trust-b")]
    assert summary["linesAudited"] == 1


def test_drift_is_found_on_a_line_that_is_written_while_it_is_audited(world: World) -> None:
    world.matched_order()
    world.client.update_item(  # drift: a counter moved outside any transaction
        TableName="fundrouter-test-lines",
        Key={"pk": {"S": "LINE#bank-a-consumer"}, "sk": {"S": "LINE"}},
        UpdateExpression="SET reserved = reserved + :x, held = held + :x",
        ExpressionAttributeValues={":x": {"N": "5000"}},
    )
    joiners = iter(["o-join-1", "o-join-2"])
    listing: list[bool] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        listing.append(params.get("IndexName") == "byLine")

    def claim_after_the_listing(**_: Any) -> None:
        """Right after the audit lists the line's orders, before it reads the line,
        another order is claimed on it (the old audit gave up on a line that moved)."""
        order_id = next(joiners, None) if listing.pop() else None
        if order_id is not None:
            matched(world, order_id)

    world.client.meta.events.register("before-parameter-build.dynamodb.Query", note)
    world.client.meta.events.register("after-call.dynamodb.Query", claim_after_the_listing)

    summary = reconciler.handle(world.reconciler)

    assert world.line()[0] == 1_255_000 + 2 * 1_250_000  # both joiners claimed meanwhile
    [drift] = summary["drift"]
    assert (drift["reserved"] - drift["expected_reserved"], drift["line_id"]) == (
        5_000,
        "bank-a-consumer",
    )
    assert len(drift["orders"]) == 3


def audit_report(world: World, event: str) -> tuple[int, Any]:
    service = AuditService(
        lambda: [r.line.line_id for r in world.lines.list_lines()],
        DynamoAudit(world.client, world.orders_table, LINES_TABLE),
    )
    event_body = load_event(f"api/{event}.json")
    response = serve(event_body, **world.api_services, audit=service)
    return response["statusCode"], json.loads(response["body"])


def test_the_audit_report_shows_each_lines_last_pass_and_its_drift(world: World) -> None:
    world.matched_order()
    assert audit_report(world, "get_audit")[1]["items"][0]["lastFullPassAt"] is None
    world.client.update_item(
        TableName=LINES_TABLE,
        Key={"pk": {"S": "LINE#bank-a-consumer"}, "sk": {"S": "LINE"}},
        UpdateExpression="SET drawn = drawn + :x, held = held + :x",
        ExpressionAttributeValues={":x": {"N": "700"}},
    )
    reconciler.handle(world.reconciler)

    status, body = audit_report(world, "get_audit")

    assert status == 200
    bank, trust = body["items"]
    assert (bank["lineId"], bank["orders"], bank["unconfirmed"], bank["passUnderWay"]) == (
        "bank-a-consumer",
        1,
        None,
        None,
    )
    assert bank["lastFullPassAt"] is not None
    assert bank["drift"] == {
        "reserved": 1_250_000,
        "expectedReserved": 1_250_000,
        "drawn": 700,
        "expectedDrawn": 0,
        "amount": 700,
        "orders": [f"{TENANT}/{ORDER_ID}"],
    }
    assert (trust["lineId"], trust["drift"], trust["orders"]) == ("trust-b", None, 0)


def test_a_tenant_may_not_read_the_audit(world: World) -> None:
    status, body = audit_report(world, "get_audit_by_tenant")

    assert (status, body["error"]["code"]) == (403, "forbidden")


def many_matched(world: World, count: int) -> list[str]:
    """`count` orders matched on bank-a-consumer, made big enough to hold them all."""
    record = world.lines.get("bank-a-consumer")
    assert record is not None
    bigger = record.line.config.model_copy(update={"limit": 10**12})
    world.lines.put_config("bank-a-consumer", bigger, world.clock())
    order_ids = [f"o-{n:04d}" for n in range(count)]
    for order_id in order_ids:
        matched(world, order_id)
    return order_ids


def test_a_line_s_expired_holds_are_released_together_within_the_item_limit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed_up_moto(monkeypatch)
    order_ids = many_matched(world, 150)
    world.clock.advance(901)
    sent = world.transactions()

    summary = reconciler.handle(world.reconciler)

    assert sorted(summary["expired"]) == order_ids
    assert summary["failures"] == []
    # 98 orders, the line and their claim day fill a transaction to its 100 items.
    assert [len(items) for items in sent] == [
        100,
        54,
    ]  # 150 orders: 98 + 52, each with the line and the day
    assert world.line()[0] == 0
    world.assert_invariant()  # counters and per-status counts equal the orders' sums


def test_an_order_that_moved_meanwhile_is_left_out_and_the_rest_expire(world: World) -> None:
    many_matched(world, 5)
    world.clock.advance(901)
    read = [world.orders.get(TENANT, f"o-{n:04d}") for n in range(5)]
    stale = [order for order in read if order is not None]
    event = load_event("api/order_event_cancelled.json")
    event |= {"rawPath": "/v1/orders/o-0002/events", "pathParameters": {"orderId": "o-0002"}}
    assert world.call(event)[0] == 200, "cancelled after the reconciler read it"
    now = world.clock()
    events = DynamoOrderEvents(world.client, world.orders_table, world.lines)

    outcomes = events.expire_together([(order, expire(order, now)) for order in stale])

    assert outcomes == [Commit.COMMITTED] * 2 + [Commit.ORDER_MOVED] + [Commit.COMMITTED] * 2
    after = [world.orders.get(TENANT, f"o-{n:04d}") for n in range(5)]
    statuses = {order.order_id: order.status.value for order in after if order is not None}
    assert statuses == {f"o-{n:04d}": "CANCELLED" if n == 2 else "EXPIRED" for n in range(5)}
    world.assert_invariant()
