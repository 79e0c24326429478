"""A small fundrouter on moto: the API handler, the matcher and the reconciler over
one pair of tables built from template.yaml, with a clock the test moves."""

import json
import math
from datetime import timedelta
from typing import Any

import boto3
from fundrouter.domain.orders import Order
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.history import DynamoOrderHistory
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import (
    ORDER_SK,
    DynamoOrderIndexes,
    DynamoOrderRepository,
    order_from_item,
    order_pk,
)
from fundrouter.persistence.retries import Backoff
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.service.orders import OrderHistoryService, OrderService
from fundrouter.service.reconciling import Reconciler

from tests.support.api import serve
from tests.support.aws import put_all, scan_all
from tests.support.events import load_event
from tests.support.factories import line_config
from tests.support.fakes import Clock
from tests.support.handlers import handler_module
from tests.support.orders import counts_of
from tests.support.template import create_table_kwargs

api = handler_module("api", "api_handler")
LINES_TABLE = "fundrouter-test-lines"
TENANT = "demotenantclient0000000001"
ORDER_ID = "shop-20261124-0001"
# The retries' backoff without the waiting, for tests that inject faults.
NO_WAIT = Backoff(sleep=lambda _: None)


class World:
    """The API and the matcher over one pair of moto tables."""

    def __init__(self, orders_table: str) -> None:
        self.client = boto3.client("dynamodb")
        self.client.create_table(**create_table_kwargs("LinesTable", LINES_TABLE))
        self.orders_table = orders_table
        self.clock = clock = Clock(tick=timedelta(seconds=1))  # a second a reading
        self.lines = DynamoLineRepository(self.client, LINES_TABLE, NO_WAIT)
        self.orders = DynamoOrderRepository(self.client, orders_table)
        self.services = (
            OrderService(self.orders, clock),
            LineService(self.lines, clock),
            OrderEventService(
                DynamoOrderEvents(self.client, orders_table, self.lines, NO_WAIT), clock
            ),
        )
        self.history = OrderHistoryService(DynamoOrderHistory(self.client, orders_table))
        # What the API's routes receive here (tests.support.api.serve).
        self.api_services = dict(zip(("orders", "lines", "events"), self.services, strict=True))
        self.api_services["history"] = self.history
        self.matcher = MatchService(
            LineCatalog(self.lines, ttl_seconds=0),
            DynamoMatchStore(self.client, orders_table, self.lines, NO_WAIT),
            clock,
        )
        self.reconciler = Reconciler(
            DynamoOrderIndexes(self.client, orders_table),
            self.lines,
            DynamoOrderEvents(self.client, orders_table, self.lines, NO_WAIT),
            self.matcher,
            clock,
            audit=DynamoAudit(self.client, orders_table, LINES_TABLE, NO_WAIT),
            workers=1,  # moto is not safe under concurrent writes
        )
        for line_id, priority in (("bank-a-consumer", 1), ("trust-b", 2)):
            config = line_config(
                funderId=line_id.split("-")[0],
                name=line_id,
                limit=10_000_000,
                aprBps=1000,
                priority=priority,
            )
            self.lines.put_config(line_id, config, clock())

    def call(self, name_or_event: str | dict[str, Any]) -> tuple[int, Any]:
        response = self.respond(name_or_event)
        return response["statusCode"], json.loads(response["body"])

    def respond(self, name_or_event: str | dict[str, Any]) -> dict[str, Any]:
        """The API handler's whole answer (status, headers, body)."""
        event = (
            load_event(f"api/{name_or_event}.json")
            if isinstance(name_or_event, str)
            else name_or_event
        )
        return serve(event, **self.api_services)

    def transactions(self) -> list[list[dict[str, Any]]]:
        """The items of every TransactWriteItems the world's client sends from now on."""
        sent: list[list[dict[str, Any]]] = []
        self.client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems",
            lambda params, **_: sent.append(params["TransactItems"]),
        )
        return sent

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
        orders = [
            order_from_item(item)
            for item in scan_all(self.client, self.orders_table)
            if item["sk"]["S"] == "ORDER"
        ]
        for order in orders:
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
            assert record.orders == counts_of(orders, line.line_id), line.line_id

    def everything(self) -> list[str]:
        """Every item, but the audit's own bookkeeping (its cursor and last pass)."""
        items = scan_all(self.client, self.orders_table) + scan_all(self.client, LINES_TABLE)
        mine = [item for item in items if not item["pk"]["S"].startswith("AUDIT#")]
        return sorted(json.dumps(item, sort_keys=True) for item in mine)


# What the tests of big histories and many lines, and the benches, build on a World.
KB = 1024


def order_event(name: str, **body: Any) -> dict[str, Any]:
    """events/api/<name>.json with another body, e.g. a repayment of 1."""
    return load_event(f"api/{name}.json") | {"body": json.dumps(body)}


def repaid(number: int, amount: int = 1) -> dict[str, Any]:
    return order_event(
        "order_event_repaid_part", eventId=f"repay-{number}", type="REPAID", amount=amount
    )


def disbursed(world: World) -> None:
    """The sample order matched and 1,000,000 of it disbursed."""
    world.matched_order()
    assert world.call("order_event_disbursed_partly")[0] == 200


def stored_order(world: World, order_id: str = ORDER_ID) -> dict[str, Any]:
    key = {"pk": {"S": order_pk(TENANT, order_id)}, "sk": {"S": ORDER_SK}}
    return dict(world.client.get_item(TableName=world.orders_table, Key=key)["Item"])


def add_refusing_lines(world: World, first: int, last: int) -> None:
    """Lines ranked before the world's two that cannot take a 12-month order: the
    last written by put_config, the others copies of its item under their own ids
    (put_config on moto takes 40 ms a line; what is measured is the match)."""
    line = line_config(
        funderId="f",
        name="refuses",
        limit=10**9,
        maxAmount=10**8,
        terms=[36],
        aprBps=900,
        priority=0,
        weight=1,
    )
    world.lines.put_config(f"many-{last - 1:04d}", line, world.clock())
    key = {"pk": {"S": line_pk(f"many-{last - 1:04d}")}, "sk": {"S": LINE_SK}}
    stored = world.client.get_item(TableName=LINES_TABLE, Key=key)["Item"]
    copies = [
        stored | {"pk": {"S": line_pk(f"many-{n:04d}")}, "lineId": {"S": f"many-{n:04d}"}}
        for n in range(first, last - 1)
    ]
    put_all(world.client, LINES_TABLE, copies)


def submit(world: World, order_id: str) -> Order:
    event = load_event("api/submit_order.json")
    body = json.loads(event["body"]) | {"orderId": order_id}
    assert world.call(event | {"body": json.dumps(body)})[0] == 202
    order = world.orders.get(TENANT, order_id)
    assert order is not None
    return order


def submit_and_match(world: World, order_id: str) -> dict[str, Any]:
    world.matcher.match(submit(world, order_id))
    return stored_order(world, order_id)


def stored_sizes(world: World, items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Each item of a transaction as stored now: its kind (its sort key up to the
    first #) and its size by DynamoDB's rules."""
    sizes = []
    for action in items:
        operation = next(iter(action.values()))
        key = operation.get("Key") or {name: operation["Item"][name] for name in ("pk", "sk")}
        stored = world.client.get_item(TableName=operation["TableName"], Key=key)["Item"]
        sizes.append((key["sk"]["S"].split("#")[0], item_size(stored)))
    return sizes


def transaction_units(sizes: list[tuple[str, int]]) -> int:
    """2 write units per started KB of each item (moto returns no consumed capacity;
    a ConditionCheck is billed like a write)."""
    return sum(2 * max(1, math.ceil(size / KB)) for _, size in sizes)
