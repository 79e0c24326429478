"""Status events the bus would not take, end to end on moto: the tracker dead-letters
the order's identity, and POST /v1/admin/status-events/republish later publishes the
order's status as the table holds it then, at its current version."""

import json
from typing import Any

import pytest
from fundrouter.persistence.eventbus import SqsDeadLetters
from fundrouter.persistence.orders import DynamoOrderRepository, order_item
from fundrouter.service.tracking import StatusEventRepublisher

from tests.support.api import built_from_environment, serve
from tests.support.aws import FakeLambdaContext
from tests.support.bus import BUS, Bus, details
from tests.support.events import load_event
from tests.support.handlers import handler_module
from tests.support.world import LINES_TABLE, ORDER_ID, TENANT, World, api

tracker = handler_module("tracker", "tracker_handler")


@pytest.fixture
def world(orders_table: str) -> World:
    return World(orders_table)


@pytest.fixture
def bus(aws: None) -> Bus:
    return Bus()


def new_order_record(world: World) -> dict[str, Any]:
    """The stream record of the order's INSERT, as the table wrote it."""
    order = world.orders.get(TENANT, ORDER_ID)
    assert order is not None
    record = load_event("tracker/new_order.json")["Records"][0]
    item = order_item(order)
    record["dynamodb"] |= {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item}
    return {"Records": [record]}


def republish(world: World, bus: Bus, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    service = StatusEventRepublisher(
        DynamoOrderRepository(world.client, world.orders_table),
        bus.publisher(),
        SqsDeadLetters(bus.sqs, bus.dlq_url),
    )
    event = load_event("api/republish_status_events.json")
    if body is not None:
        event["body"] = json.dumps(body)
    response = serve(event, **world.api_services, republisher=service)
    return response["statusCode"], json.loads(response["body"])


def queued(bus: Bus) -> tuple[int, int]:
    attributes = bus.sqs.get_queue_attributes(
        QueueUrl=bus.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_a_lost_event_is_dead_lettered_and_republished_at_the_orders_current_version(
    world: World, bus: Bus
) -> None:
    assert world.call("submit_order")[0] == 202
    stream_batch = new_order_record(world)
    bus.refusing(lambda _: True)

    # The bus refuses the RECEIVED event on every try: the record is dead-lettered.
    assert tracker.handle(
        stream_batch, FakeLambdaContext(), bus.publisher(), bus.dead_letters()
    ) == {"batchItemFailures": []}
    assert bus.received() == []
    assert queued(bus) == (1, 0)

    # Meanwhile the order moves on (version 2), and the bus recovers.
    world.match()
    bus.refusing(lambda _: False)
    status, report = republish(world, bus)

    assert status == 200
    assert report == {
        "republished": [
            {"tenantId": TENANT, "orderId": ORDER_ID, "status": "MATCHED", "version": 2}
        ],
        "missing": [],
        "failed": [],
        "letters": 1,
        "more": False,
    }
    current = world.call("get_order")[1]
    [detail] = details(bus.received())
    assert {k: detail[k] for k in ("tenantId", "orderId", "from", "to", "version")} == {
        "tenantId": TENANT,
        "orderId": ORDER_ID,
        "from": "RECEIVED",
        "to": "MATCHED",
        "version": current["version"],
    }
    assert (detail["lineId"], detail["reserved"], detail["at"]) == (
        current["lineId"],
        current["reserved"],
        current["updatedAt"],
    )
    assert queued(bus) == (0, 0)
    # Nothing left: a second run publishes nothing.
    assert republish(world, bus)[1]["letters"] == 0
    assert bus.received() == []


def test_a_republish_the_bus_refuses_keeps_the_letter(world: World, bus: Bus) -> None:
    assert world.call("submit_order")[0] == 202
    bus.refusing(lambda _: True)
    tracker.handle(
        new_order_record(world), FakeLambdaContext(), bus.publisher(), bus.dead_letters()
    )

    status, report = republish(world, bus)

    assert status == 200
    assert report["republished"] == []
    assert report["failed"] == [
        {"tenantId": TENANT, "orderId": ORDER_ID, "reason": "InternalFailure"}
    ]
    # Received and not deleted: back on the queue once its visibility timeout ends.
    assert queued(bus) == (0, 1)


def test_several_letters_for_one_order_publish_it_once(world: World, bus: Bus) -> None:
    assert world.call("submit_order")[0] == 202
    bus.refusing(lambda _: True)
    for _ in range(3):
        tracker.handle(
            new_order_record(world), FakeLambdaContext(), bus.publisher(), bus.dead_letters()
        )
    bus.refusing(lambda _: False)

    report = republish(world, bus, {"limit": 10})[1]

    assert (report["letters"], len(report["republished"])) == (3, 1)
    assert len(bus.received()) == 1
    assert queued(bus) == (0, 0)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"limit": 0}, 422), ({"limit": "all"}, 422), ({"limit": 501}, 422), ({"every": 1}, 422)],
)
def test_a_bad_limit_is_refused_and_reads_no_letter(
    world: World, bus: Bus, body: dict[str, Any], status: int
) -> None:
    assert world.call("submit_order")[0] == 202
    bus.refusing(lambda _: True)
    tracker.handle(
        new_order_record(world), FakeLambdaContext(), bus.publisher(), bus.dead_letters()
    )

    answered, error = republish(world, bus, body)

    assert answered == status
    assert error["error"]["code"] == "validation_failed"
    assert queued(bus) == (1, 0)


def test_a_tenant_token_cannot_republish(world: World, bus: Bus) -> None:
    event = load_event("api/republish_status_events.json")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = "fundrouter/orders.write"

    response = serve(event, **world.api_services)

    assert response["statusCode"] == 403


def test_the_lambda_entry_point_republishes_with_settings_from_the_environment(
    world: World, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.call("submit_order")[0] == 202
    bus.refusing(lambda _: True)
    tracker.handle(
        new_order_record(world), FakeLambdaContext(), bus.publisher(), bus.dead_letters()
    )
    monkeypatch.setenv("ORDERS_TABLE_NAME", world.orders_table)
    monkeypatch.setenv("LINES_TABLE_NAME", LINES_TABLE)
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("UNPUBLISHED_EVENTS_QUEUE_URL", bus.dlq_url)
    with built_from_environment():
        response = api.handler(load_event("api/republish_status_events.json"), FakeLambdaContext())

    assert response["statusCode"] == 200
    assert [(d["orderId"], d["to"], d["version"]) for d in details(bus.received())] == [
        (ORDER_ID, "RECEIVED", 1)
    ]
    assert queued(bus) == (0, 0)
