"""`make bench`: what `GET /v1/lines/{id}` costs with 1,000 and 100,000 holdings.

The ApiFunction's real entry ``handle(event, context, ...)`` serves
events/api/get_line.json on moto, over the Orders and Lines tables of template.yaml.
The holdings are DISBURSED order items written straight into the Orders table
(``batch_write_item``; each is ``order_item`` of an order moved by the domain's own
transitions), and the line's counters and counts set to match, which is what the
matcher and the events would have left. Read units are computed from the sizes of
the items each read returned, by DynamoDB's rules (moto's ConsumedCapacity is a
constant per key, not a measure): a strongly consistent BatchGetItem costs
ceil(size / 4 KB) per item, an eventually consistent Query half of ceil(sum / 4 KB)
per page. For comparison, the byLine Query the view made before the line counted its
orders is timed and costed the same way.

Run by bench/run.py in the offline AWS environment (common.offline_aws).
"""

import json
import math
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
from common import Context, create_tables, event, put_all
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
    """Read units of every read a client makes, from the items it returned: a
    strongly consistent BatchGetItem costs at least 1 per key asked for, found or
    not; an eventually consistent Query half of ceil(sum / 4 KB) per page."""

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
    """The byLine Query the view made before the line counted its orders: items,
    pages, read units, milliseconds on moto, and the mean size of an item it returned
    (the index's projection)."""
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
    print("driven: the ApiFunction's app on events/api/get_line.json, moto, Lines and Orders")
    print(f"tables of template.yaml; {READS} reads per point, after the holdings were written")
    print("holdings: DISBURSED order items (batch_write_item), counters and counts set to match")
    print("read units: computed from the returned items' sizes by DynamoDB's rules (moto's")
    print("ConsumedCapacity is a constant per key); latency is moto's, in-process, not AWS's")
    print()
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE)
        line_id = event(GET_LINE_EVENT)["pathParameters"]["lineId"]
        body = json.loads(event("api/put_line.json")["body"])
        config = LineConfig.model_validate(body | {"limit": 10**15})
        lines = DynamoLineRepository(client, LINES_TABLE)
        lines.put_config(line_id, config, utc_now())
        loan = disbursed(line_id, config.funder_id)
        # Built as api_handler builds them, on the counted client.
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
    print(
        f"{'holdings':>9}  {'requests':>8}  {'read units':>10}  {'median':>9}  {'p90':>9}  orders"
    )
    for p in points:
        median = statistics.median(p.latencies_ns) / 1e6
        p90 = percentile(p.latencies_ns, 90) / 1e6
        print(
            f"{p.holdings:>9,}  {p.requests:>8}  {p.units:>10.1f}"
            f"  {median:>6.1f} ms  {p90:>6.1f} ms  {p.orders}"
        )
    low, high = points[0], points[-1]
    ratio = statistics.median(high.latencies_ns) / statistics.median(low.latencies_ns)
    print(
        f"{high.holdings:,} vs {low.holdings:,} holdings: latency {ratio:.2f}x,"
        f" read units {high.units / low.units:.2f}x"
    )
    if before is None:
        return
    found, pages, units, elapsed, projected = before
    print()
    print("before, the view also read every holding through byLine:")
    print(
        f"  measured at {found:,} holdings: {pages} Query page(s), {units:,.1f} read units,"
        f" {elapsed:,.0f} ms on moto; {projected:.0f} bytes per projected item"
    )
    for p in points:
        # Eventually consistent Query: half a unit per 4 KB of the items it returns.
        units = math.ceil(p.holdings * projected / 4096) / 2
        pages = math.ceil(p.holdings * projected / 2**20)
        print(f"  computed at {p.holdings:,} holdings: {units:,.1f} read units, {pages} page(s)")
