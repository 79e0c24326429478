"""Section 9: `GET /v1/lines/{id}` (events/api/get_line.json through the ApiFunction's
app, moto) with 1,000 and 100,000 DISBURSED holdings written straight into the Orders
table, the line's counters and counts set to match. Read units from the returned
items' sizes (moto's ConsumedCapacity is a constant); against the byLine Query the
view made before the line counted its orders."""

import json
import math
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
from common import Context, create_tables, event, ms, put_all, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.lifecycle import EventType, OrderEvent, apply_event, matched
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import Order
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, count_attribute, line_pk
from fundrouter.persistence.orders import BY_LINE, DynamoOrderRepository, order_item, order_pk
from fundrouter.service.lines import LineService
from fundrouter.service.orders import OrderService
from fundrouter_cli.stats import percentile
from moto import mock_aws

from tests.support.api import serve
from tests.support.orders import DECISION, received

GET_LINE_EVENT = "api/get_line.json"
ORDERS_TABLE = "fundrouter-bench-views-orders"
LINES_TABLE = "fundrouter-bench-views-lines"
HOLDINGS = (1_000, 100_000)
READS = 100
AMOUNT = 10_000


def disbursed(line_id: str, funder_id: str) -> Order:
    """One loan as the matcher and a DISBURSED event leave it."""
    now = utc_now()
    order = matched(
        received("bench-loan", AMOUNT, now),
        line_id=line_id,
        funder_id=funder_id,
        now=now,
        hold_expires_at=now + timedelta(minutes=15),
        claim_day=now.date().isoformat(),
        decision=DECISION,
    )
    sent = OrderEvent(event_id="bench-disbursed", type=EventType.DISBURSED, amount=AMOUNT)
    return apply_event(order, sent, now).order


class Reads:
    """Read units from the items returned: a consistent BatchGetItem ceil(size / 4 KB)
    an item (1 a key not found), an eventually consistent Query half of ceil(sum / 4 KB)."""

    def __init__(self, client: Any) -> None:
        self.units = 0.0
        self.requests = 0
        self.item_bytes: list[int] = []
        self._keys = 0
        client.meta.events.register("before-parameter-build.dynamodb.*", self._asked)
        client.meta.events.register("after-call.dynamodb.*", self._count)

    def _asked(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "BatchGetItem":
            self._keys = sum(len(r["Keys"]) for r in params["RequestItems"].values())

    def _count(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.requests += 1
        if model.name == "BatchGetItem":
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            self.units += sum(math.ceil(item_size(i) / 4096) for i in items)
            self.units += self._keys - len(items)
        elif model.name == "Query":
            sizes = [item_size(i) for i in parsed.get("Items", [])]
            self.item_bytes += sizes
            self.units += math.ceil(sum(sizes) / 4096) / 2

    def reset(self) -> None:
        self.units, self.requests, self.item_bytes = 0.0, 0, []


def hold(client: Any, line_id: str, loan: Order, start: int, count: int) -> None:
    """Copies `start` to `count` of `loan` in the Orders table, and the line's
    counters and counts set to match `count` loans."""
    template = order_item(loan)
    items = [
        template | {"pk": {"S": order_pk(loan.tenant_id, order_id)}, "orderId": {"S": order_id}}
        for order_id in (f"bench-loan-{index:06d}" for index in range(start, count))
    ]
    put_all(client, ORDERS_TABLE, items)
    held = count * AMOUNT
    client.update_item(
        TableName=LINES_TABLE,
        Key={"pk": {"S": line_pk(line_id)}, "sk": {"S": LINE_SK}},
        UpdateExpression="SET drawn = :d, held = :d, #n = :n",
        ExpressionAttributeNames={"#n": count_attribute(loan.status)},
        ExpressionAttributeValues={":d": {"N": str(held)}, ":n": {"N": str(count)}},
    )


@dataclass
class Point:
    holdings: int
    latencies_ns: list[int]
    units: float
    requests: int
    orders: dict[str, int]


def views(services: tuple[Any, ...], context: Any, reads: Reads, count: int) -> Point:
    request = event(GET_LINE_EVENT)
    latencies, units, body = [], [], {}
    reads.reset()
    for _ in range(READS):
        before = reads.units
        start = time.perf_counter_ns()
        response = serve(request, context, orders=services[0], lines=services[1])
        latencies.append(time.perf_counter_ns() - start)
        units.append(reads.units - before)
        body = json.loads(response["body"])
        if response["statusCode"] != 200:
            raise SystemExit(f"{request['rawPath']}: {response['statusCode']} {body}")
    return Point(
        count, latencies, statistics.median(units), reads.requests // READS, body["orders"]
    )


def by_line(client: Any, line_id: str, reads: Reads) -> tuple[int, int, float, float, float]:
    """The byLine Query of old: items, pages, units, ms, mean projected item size."""
    reads.reset()
    query: dict[str, Any] = {
        "TableName": ORDERS_TABLE,
        "IndexName": BY_LINE,
        "KeyConditionExpression": "lineKey = :line",
        "ExpressionAttributeValues": {":line": {"S": line_id}},
    }
    found, start = 0, time.perf_counter_ns()
    while True:
        page = client.query(**query)
        found += len(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    elapsed = (time.perf_counter_ns() - start) / 1e6
    return found, reads.requests, reads.units, elapsed, statistics.mean(reads.item_bytes)


def report() -> None:
    print(f"{READS} reads per point; latency is moto's, in-process, not AWS's")
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE)
        line_id = event(GET_LINE_EVENT)["pathParameters"]["lineId"]
        body = json.loads(event("api/put_line.json")["body"])
        config = LineConfig.model_validate(body | {"limit": 10**15})
        lines = DynamoLineRepository(client, LINES_TABLE)
        lines.put_config(line_id, config, utc_now())
        loan = disbursed(line_id, config.funder_id)
        services = (
            OrderService(DynamoOrderRepository(client, ORDERS_TABLE), utc_now),
            LineService(lines, utc_now),
        )
        reads = Reads(client)
        points, before, written = [], None, 0
        for count in HOLDINGS:
            hold(client, line_id, loan, written, count)
            written = count
            points.append(views(services, Context(), reads, count))
            if before is None:  # on moto a byLine Query of 100,000 items takes too long
                before = by_line(client, line_id, reads)
    found, pages, units, elapsed, projected = before or (0, 0, 0.0, 0.0, 0.0)
    rows = [
        (
            f"{p.holdings:,}",
            p.requests,
            f"{p.units:.1f}",
            ms(statistics.median(p.latencies_ns)),
            ms(percentile(p.latencies_ns, 90)),
            f"{math.ceil(p.holdings * projected / 4096) / 2:,.1f}",
            math.ceil(p.holdings * projected / 2**20),
            p.orders,
        )
        for p in points
    ]
    head = ("holdings", "requests", "read units", "median", "p90", "byLine units", "pages")
    table((*head, "orders"), rows)
    low, high = points[0], points[-1]
    ratio = statistics.median(high.latencies_ns) / statistics.median(low.latencies_ns)
    growth = f"latency {ratio:.2f}x, units {high.units / low.units:.2f}x"
    print(f"{high.holdings:,} vs {low.holdings:,}: {growth}")
    print(
        f"byLine (before) measured at {found:,}: {pages} page(s), {units:,.1f} units,"
        f" {elapsed:,.0f} ms on moto, {projected:.0f} B an item; at other points computed"
    )
