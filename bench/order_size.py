"""`make bench` section 8: what one matched order writes as lines grow, and the order
item's size after N partial repayments, on moto.

(a) At 10, 100 and 1,000 lines (all but the claimed one ranked first and refusing the
order's term), one order submitted (OrderService) and matched (MatchService on
DynamoMatchStore): every item of the match's TransactWriteItems, its size as stored
and its write units (2 per started KB), and every GSI entry the write changed (keys
compared before and after: a new entry is 1 unit per KB of the entry, a moved key 2,
an unchanged key 0; entry = the index's keys and the table's, plus DynamoDB's 100
bytes; every index is KEYS_ONLY).

(b) Partial repayments:
one order is matched, disbursed (1,000,000) and repaid 1 at a time through the
service the ApiFunction runs for POST /v1/orders/{orderId}/events (OrderEventService
on DynamoOrderEvents), on the tables of template.yaml created on moto, made cheaper by
tests/support/moto_speed.py (same outcomes). At N = 10, 1,000 and 10,000 it prints:

- the order item's size by DynamoDB's item-size rules (persistence.codec.item_size);
- the last event's TransactWriteItems, item by item, and its write units, computed
  from the items' sizes as stored (2 WCU per started KB per item in a transaction:
  moto returns no consumed capacity, so none is read from the server);
- what the order item would weigh if it still held every entry, as before the bound:
  arithmetic, the item plus every entry now stored apart (each less its keys).

Run by bench/run.py in the offline AWS environment (common.offline_aws).
"""

import math
import time
from datetime import timedelta
from typing import Any

import boto3
import pytest
from common import create_tables, transactions
from fundrouter.domain.lifecycle import OrderEvent
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import Order, OrderRequest
from fundrouter.persistence.codec import attribute_size, item_size
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import ORDER_SK, DynamoOrderRepository, order_pk
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.service.orders import OrderService
from moto import mock_aws
from scale import transactional_wcu

from tests.support import moto_speed, template
from tests.support.fakes import Clock

POINTS = (10, 1_000, 10_000)
LINE_POINTS = (10, 100, 1_000)
INDEX_OVERHEAD = 100  # bytes DynamoDB adds to every index entry
ORDERS_TABLE = "bench-size-orders"
LINES_TABLE = "bench-size-lines"
TENANT = "bench-tenant"
LINE = "bank-a-consumer"
KEY = {"pk": {"S": order_pk(TENANT, "loan-1")}, "sk": {"S": ORDER_SK}}
KB = 1024


class Shop:
    """One order submitted on moto (made cheaper by tests/support/moto_speed.py) with
    the line it matches and `refusing` lines ranked before it that refuse its term."""

    def __init__(self, patch: pytest.MonkeyPatch, refusing: int = 0) -> None:
        moto_speed.speed_up_moto(patch)
        self.client = client = boto3.client("dynamodb")
        create_tables(client, OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE)
        self.clock = Clock(tick=timedelta(seconds=1))  # as tests/support/world.py
        self.lines = DynamoLineRepository(client, LINES_TABLE)
        self.lines.put_config(LINE, _line_config([12], 2 if refusing else 1), self.clock())
        for number in range(refusing):
            self.lines.put_config(f"refuses-{number:04d}", _line_config([36], 1), self.clock())
        request = OrderRequest.model_validate(
            {"orderId": "loan-1", "amount": 1_000_000, "currency": "CNY", "termMonths": 12}
            | {"product": "installment", "customer": {"id": "c-1"}}
        )
        orders = DynamoOrderRepository(client, ORDERS_TABLE)
        self.order: Order = OrderService(orders, self.clock).submit(TENANT, request).order
        self.sent = transactions(client)

    def match(self) -> None:
        store = DynamoMatchStore(self.client, ORDERS_TABLE, self.lines)
        MatchService(LineCatalog(self.lines), store, self.clock).match(self.order)

    def stored(self) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get_item(TableName=ORDERS_TABLE, Key=KEY)["Item"]
        return found

    def written(self) -> list[tuple[str, int]]:
        """(what each item is, its size as stored now) of the last transaction."""
        return [_stored_size(self.client, action) for action in self.sent[-1]]


def _stored_size(client: Any, action: dict[str, Any]) -> tuple[str, int]:
    """(what the item is, its size as stored now) for one transaction action."""
    operation = next(iter(action.values()))
    key = operation.get("Key") or {name: operation["Item"][name] for name in ("pk", "sk")}
    item = client.get_item(TableName=operation["TableName"], Key=key)["Item"]
    sort_key = key["sk"]["S"]
    return sort_key.split("#")[0], item_size(item)


def measure(points: tuple[int, ...]) -> list[tuple[int, int, list[tuple[str, int]], int]]:
    figures = []
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        shop = Shop(patch)
        shop.match()
        store = DynamoOrderEvents(shop.client, ORDERS_TABLE, shop.lines)
        events = OrderEventService(store, shop.clock)
        disburse = {"eventId": "disburse", "type": "DISBURSED", "amount": 1_000_000}
        events.record(TENANT, "loan-1", OrderEvent.model_validate(disburse))
        done = 0
        for point in points:
            for number in range(done, point):
                repay = {"eventId": f"repay-{number}", "type": "REPAID", "amount": 1}
                events.record(TENANT, "loan-1", OrderEvent.model_validate(repay))
            done = point
            order_size = item_size(shop.stored())
            unbounded = _unbounded(shop.client, order_size)
            figures.append((point, order_size, shop.written(), unbounded))
    return figures


def _unbounded(client: Any, order_size: int) -> int:
    """The order item's size had it kept every entry: plus each entry stored apart,
    measured as an element of the item's history list (a map less the keys)."""
    extra = 0
    query: dict[str, Any] = {
        "TableName": ORDERS_TABLE,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :hist)",
        "ExpressionAttributeValues": {
            ":pk": {"S": order_pk(TENANT, "loan-1")},
            ":hist": {"S": HIST_PREFIX},
        },
    }
    while True:
        page = client.query(**query)
        for item in page["Items"]:
            entry = {name: value for name, value in item.items() if name not in {"pk", "sk"}}
            extra += 1 + attribute_size({"M": entry})
        if "LastEvaluatedKey" not in page:
            return order_size + extra
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _line_config(terms: list[int], priority: int) -> LineConfig:
    config = {"funderId": "bank", "name": "a line", "currency": "CNY", "limit": 10_000_000}
    config |= {"minAmount": 1, "maxAmount": 5_000_000, "aprBps": 1000, "holdSeconds": 900}
    config |= {"terms": terms, "priority": priority, "weight": 50}
    return LineConfig.model_validate(config)


def _index_units(
    indexes: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]
) -> int:
    """Write units of the GSI entries one write of an item changed (KEYS_ONLY)."""
    units = 0
    for index in indexes:
        names = [key["AttributeName"] for key in index["KeySchema"]]
        entry = {name: after[name] for name in [*names, "pk", "sk"] if name in after}
        size = item_size(entry) + INDEX_OVERHEAD
        old = [before.get(name) for name in names]
        new = [after.get(name) for name in names]
        if old == new:
            continue
        # An entry appears or disappears: one write; a key moves: a delete and a put.
        writes = 2 if None not in old and None not in new else 1
        units += writes * max(1, math.ceil(size / KB))
    return units


def match_cost(lines_count: int) -> tuple[list[tuple[str, int]], int]:
    """The match's transaction items (kind, size) and the write units of the GSI
    entries it changed, with `lines_count` lines in the system."""
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        shop = Shop(patch, refusing=lines_count - 1)
        before = shop.stored()
        shop.match()
        after = shop.stored()
        if after["status"]["S"] != "MATCHED":
            raise RuntimeError(f"the order was not matched: {after['status']}")
        indexes = template.create_table_kwargs("OrdersTable", ORDERS_TABLE)[
            "GlobalSecondaryIndexes"
        ]
        return shop.written(), _index_units(indexes, before, after)


def report_match_cost(points: tuple[int, ...] = LINE_POINTS) -> None:
    started = time.perf_counter()
    print("one order matched with N lines in the system (MatchService, moto); sizes by")
    print("DynamoDB's item-size rules, write units computed from them (moto returns none)")
    print()
    print(f"{'lines':>6}  {'bytes':>6}  {'WCU':>4}  (transaction items + GSI entries)")
    first = None
    for point in points:
        written, index_units = match_cost(point)
        units = sum(transactional_wcu(size) for _, size in written) + index_units
        size = sum(size for _, size in written)
        first = first or (size, units)
        parts = ", ".join(f"{kind} {size} B" for kind, size in written)
        ratio = f"{size / first[0]:.2f}x bytes, {units / first[1]:.2f}x units of {points[0]}"
        print(f"{point:>6,}  {size:>6,}  {units:>4}  {parts}; GSI {index_units} WCU; {ratio}")
    print(f"({time.perf_counter() - started:.0f} s)")
    print()


def report(points: tuple[int, ...] = POINTS) -> None:
    started = time.perf_counter()
    figures = measure(points)
    print("one order, disbursed 1,000,000 and repaid 1 at a time (OrderEventService, moto)")
    print("sizes by DynamoDB's item-size rules; write units computed from them (2 per KB)")
    print()
    print(f"{'repayments':>10}  {'order item':>10}  {'unbounded':>10}  last event's transaction")
    for point, order_size, written, unbounded in figures:
        parts = ", ".join(f"{kind} {size} B" for kind, size in written)
        units = sum(transactional_wcu(size) for _, size in written)
        print(f"{point:>10,}  {order_size:>8,} B  {unbounded / KB:>7,.0f} KB  {units} WCU: {parts}")
    print(f"({time.perf_counter() - started:.0f} s)")
