"""POST /v1/orders/{orderId}/events on moto: each event moves the order and its
line's capacity in one transaction, exactly once per eventId. After every step the
line's counters are checked against the orders (the invariant of design.md)."""

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import boto3
import pytest
from fundrouter.domain.lines import LineConfig
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository, order_from_item
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.service.orders import OrderService

from tests.conftest import FakeLambdaContext, event_names, load_event, scan_all
from tests.support.handlers import handler_module
from tests.support.template import create_table_kwargs

api = handler_module("api", "api_handler")
LINES_TABLE = "fundrouter-test-lines"
TENANT = "demotenantclient0000000001"
ORDER_ID = "shop-20261124-0001"


class Clock:
    def __init__(self) -> None:
        self._ticks = count()

    def __call__(self) -> datetime:
        return datetime(2026, 11, 24, 10, 0, tzinfo=UTC) + timedelta(seconds=next(self._ticks))


class World:
    """The API and the matcher over one pair of moto tables."""

    def __init__(self, orders_table: str) -> None:
        self.client = boto3.client("dynamodb")
        self.client.create_table(**create_table_kwargs("LinesTable", LINES_TABLE))
        self.orders_table = orders_table
        clock = Clock()
        self.lines = DynamoLineRepository(self.client, LINES_TABLE)
        self.orders = DynamoOrderRepository(self.client, orders_table)
        self.services = (
            OrderService(self.orders, clock),
            LineService(self.lines, clock),
            OrderEventService(DynamoOrderEvents(self.client, orders_table, self.lines), clock),
        )
        self.matcher = MatchService(
            LineCatalog(self.lines, ttl_seconds=0),
            DynamoMatchStore(self.client, orders_table, self.lines),
            clock,
        )
        for line_id, priority in (("bank-a-consumer", 1), ("trust-b", 2)):
            config = LineConfig.model_validate(
                {
                    "funderId": line_id.split("-")[0],
                    "name": line_id,
                    "currency": "CNY",
                    "limit": 10_000_000,
                    "minAmount": 1,
                    "maxAmount": 5_000_000,
                    "aprBps": 1000,
                    "priority": priority,
                    "weight": 50,
                    "holdSeconds": 900,
                }
            )
            self.lines.put_config(line_id, config, clock())

    def call(self, name_or_event: str | dict[str, Any]) -> tuple[int, Any]:
        event = (
            load_event(f"api/{name_or_event}.json")
            if isinstance(name_or_event, str)
            else name_or_event
        )
        response = api.handle(event, FakeLambdaContext(), *self.services)
        return response["statusCode"], json.loads(response["body"])

    def match(self) -> None:
        order = self.orders.get(TENANT, ORDER_ID)
        assert order is not None
        self.matcher.match(order)

    def matched_order(self) -> dict[str, Any]:
        assert self.call("submit_order")[0] == 202
        self.match()
        return self.call("get_order")[1]

    def line(self, line_id: str = "bank-a-consumer") -> tuple[int, int, int]:
        record = self.lines.get(line_id)
        assert record is not None
        counters = record.line.counters
        return counters.reserved, counters.drawn, record.line.available

    def assert_invariant(self) -> None:
        reserved: dict[str, int] = {}
        drawn: dict[str, int] = {}
        for item in scan_all(self.client, self.orders_table):
            if item["sk"]["S"] != "ORDER":
                continue
            order = order_from_item(item)
            if order.status.value in {"MATCHED", "APPROVED"}:
                reserved[order.line_id or ""] = (
                    reserved.get(order.line_id or "", 0) + order.reserved
                )
            if order.status.value == "DISBURSED":
                drawn[order.line_id or ""] = drawn.get(order.line_id or "", 0) + order.outstanding
        for record in self.lines.list_lines():
            line = record.line
            assert line.counters.reserved == reserved.get(line.line_id, 0), line.line_id
            assert line.counters.drawn == drawn.get(line.line_id, 0), line.line_id

    def everything(self) -> list[str]:
        items = scan_all(self.client, self.orders_table) + scan_all(self.client, LINES_TABLE)
        return sorted(json.dumps(item, sort_keys=True) for item in items)


@pytest.fixture
def world(orders_table: str) -> World:
    return World(orders_table)


def test_every_order_event_sample_is_covered() -> None:
    assert {n for n in event_names("api") if n.startswith("order_event")} == {
        "order_event_approved",
        "order_event_declined",
        "order_event_cancelled",
        "order_event_disbursed_partly",
        "order_event_repaid_part",
        "order_event_repaid_rest",
        "order_event_disbursed_without_amount",
        "order_event_approved_with_amount",
        "order_event_unknown_type",
    }


def test_an_order_goes_from_match_to_repaid_moving_capacity_exactly(world: World) -> None:
    matched = world.matched_order()
    assert (matched["status"], matched["lineId"]) == ("MATCHED", "bank-a-consumer")
    assert world.line() == (1_250_000, 0, 8_750_000)

    status, approved = world.call("order_event_approved")
    assert (status, approved["status"]) == (200, "APPROVED")
    assert world.line() == (1_250_000, 0, 8_750_000)

    _, disbursed = world.call("order_event_disbursed_partly")  # 1,000,000 of 1,250,000
    assert (disbursed["status"], disbursed["outstanding"], disbursed["reserved"]) == (
        "DISBURSED",
        1_000_000,
        0,
    )
    assert world.line() == (0, 1_000_000, 9_000_000)

    _, part = world.call("order_event_repaid_part")  # 400,000
    assert (part["status"], part["outstanding"]) == ("DISBURSED", 600_000)
    assert world.line() == (0, 600_000, 9_400_000)

    _, repaid = world.call("order_event_repaid_rest")  # 600,000
    assert (repaid["status"], repaid["outstanding"]) == ("REPAID", 0)
    assert world.line() == (0, 0, 10_000_000)
    assert [h["status"] for h in repaid["history"]] == [
        "RECEIVED", "MATCHED", "APPROVED", "DISBURSED", "DISBURSED", "REPAID",
    ]  # fmt: skip
    world.assert_invariant()


def test_a_repeated_event_returns_the_same_result_and_changes_nothing(world: World) -> None:
    world.matched_order()
    first = world.call("order_event_disbursed_partly")
    before = world.everything()

    again = world.call("order_event_disbursed_partly")

    assert again == first
    assert world.everything() == before


def test_the_same_event_id_with_other_content_is_a_conflict(world: World) -> None:
    world.matched_order()
    world.call("order_event_approved")
    before = world.everything()
    event = load_event("api/order_event_approved.json")
    event["body"] = json.dumps({"eventId": "evt-approve-1", "type": "CANCELLED"})

    status, body = world.call(event)

    assert (status, body["error"]["code"]) == (409, "event_conflict")
    assert world.everything() == before


def test_cancelling_a_matched_order_gives_its_reservation_back(world: World) -> None:
    world.matched_order()

    status, cancelled = world.call("order_event_cancelled")

    assert (status, cancelled["status"], cancelled["reserved"]) == (200, "CANCELLED", 0)
    assert world.line() == (0, 0, 10_000_000)
    record = world.lines.get("bank-a-consumer", ["2026-11-24"])
    assert record is not None
    assert record.line.counters.used_on("2026-11-24") == 0
    world.assert_invariant()


def test_a_declined_order_is_rerouted_to_the_next_line_never_the_one_that_declined(
    world: World,
) -> None:
    world.matched_order()

    status, declined = world.call("order_event_declined")
    world.match()
    _, rerouted = world.call("get_order")

    assert (status, declined["status"], declined["declinedLineIds"]) == (
        200,
        "RECEIVED",
        ["bank-a-consumer"],
    )
    assert world.line("bank-a-consumer") == (0, 0, 10_000_000)
    assert (rerouted["status"], rerouted["lineId"]) == ("MATCHED", "trust-b")
    assert world.line("trust-b")[0] == 1_250_000
    world.assert_invariant()


@pytest.mark.parametrize(
    ("setup", "event", "status", "code"),
    [
        ([], "order_event_approved", 409, "transition_not_allowed"),
        (["order_event_cancelled"], "order_event_disbursed_partly", 409, "transition_not_allowed"),
        (["order_event_disbursed_partly"], "order_event_approved", 409, "transition_not_allowed"),
        (
            ["order_event_disbursed_partly", "order_event_repaid_part"],
            "order_event_repaid_rest",
            200,
            None,
        ),
    ],
)
def test_events_the_state_does_not_allow_are_409_with_the_current_status(
    world: World, setup: list[str], event: str, status: int, code: str | None
) -> None:
    assert world.call("submit_order")[0] == 202
    if setup:
        world.match()
    for name in setup:
        assert world.call(name)[0] == 200
    before = world.everything()

    answer, body = world.call(event)

    assert answer == status
    if code is not None:
        assert body["error"]["code"] == code
        assert "is not allowed for an order that is" in body["error"]["message"]
        assert world.everything() == before


def test_amounts_above_what_is_held_are_422(world: World) -> None:
    world.matched_order()
    too_much = load_event("api/order_event_disbursed_partly.json")
    too_much["body"] = json.dumps({"eventId": "evt-big", "type": "DISBURSED", "amount": 1_250_001})
    before = world.everything()

    status, body = world.call(too_much)

    assert status == 422
    assert body["error"]["fields"] == [
        {"field": "amount", "reason": "above the reservation 1250000"}
    ]
    assert world.everything() == before


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("order_event_disbursed_without_amount", "amount"),
        ("order_event_approved_with_amount", "amount"),
        ("order_event_unknown_type", "type"),
    ],
)
def test_malformed_events_are_422_naming_the_field(world: World, name: str, field: str) -> None:
    world.matched_order()
    before = world.everything()

    status, body = world.call(name)

    assert status == 422
    assert field in {f["field"] for f in body["error"]["fields"]}
    assert world.everything() == before


def test_an_event_for_an_unknown_order_is_404(world: World) -> None:
    status, body = world.call("order_event_approved")

    assert (status, body["error"]["code"]) == (404, "order_not_found")
