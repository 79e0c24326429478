"""Section 9: `GET /v1/lines/{id}` (events/api/get_line.json through the ApiFunction's
app, moto) with 1,000 and 100,000 DISBURSED holdings written straight into the Orders
table, the line's counters and counts set to match. Read units from the returned
items' sizes (moto's ConsumedCapacity is a constant): a consistent BatchGetItem
ceil(size / 4 KB) an item (1 a key not found), an eventually consistent Query half of
ceil(sum / 4 KB). (Before the line counted its orders, the view read every holding
through byLine: decision 19 keeps what that cost.)"""

import json
import math
import statistics
from typing import Any

from common import header, holding, moto, spread, table, timed
from fundrouter.domain.clock import utc_now
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.lines import LineService
from fundrouter.service.orders import OrderService

from tests.support.api import serve
from tests.support.events import load_event
from tests.support.factories import API_EXAMPLE, line_config
from tests.support.requests import Answers

REQUEST = load_event("api/get_line.json")
ORDERS_TABLE = "fundrouter-bench-views-orders"
LINES_TABLE = "fundrouter-bench-views-lines"
HOLDINGS = (1_000, 100_000)
READS = 100


def read_units(calls: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> float:
    units = 0.0
    for name, params, parsed in calls:
        if name == "BatchGetItem":
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            units += sum(math.ceil(item_size(i) / 4096) for i in items)
            units += sum(len(r["Keys"]) for r in params["RequestItems"].values()) - len(items)
        elif name == "Query":
            units += math.ceil(sum(map(item_size, parsed.get("Items", []))) / 4096) / 2
    return units


def views(services: dict[str, Any], calls: Answers) -> tuple[list[int], float, int, Any]:
    """READS views of the line: their latencies, median read units, requests a view and
    the line's counts of its orders."""
    latencies, units = [], []
    calls.reset()
    for _ in range(READS):
        asked = len(calls.calls)
        latencies.append(timed(REQUEST, 200, **services))
        units.append(read_units(calls.calls[asked:]))
    orders = json.loads(serve(REQUEST, **services)["body"])["orders"]
    return latencies, statistics.median(units), len(calls.calls) // READS, orders


def report() -> None:
    header("9. GET /v1/lines/{id} with 1,000 and 100,000 holdings (moto, in-process)")
    print(f"{READS} reads per point; latency is moto's, in-process, not AWS's")
    line_id, points = REQUEST["pathParameters"]["lineId"], []
    tables = {"OrdersTable": ORDERS_TABLE, "LinesTable": LINES_TABLE}
    with moto(**tables) as client:
        lines, calls = DynamoLineRepository(client, LINES_TABLE), Answers(client)
        record = lines.put_config(line_id, line_config(API_EXAMPLE, limit=10**15), utc_now())
        orders = OrderService(DynamoOrderRepository(client, ORDERS_TABLE), utc_now)
        services = {"orders": orders, "lines": LineService(lines, utc_now)}
        for start, count in zip((0, *HOLDINGS), HOLDINGS, strict=False):
            names = [f"bench-loan-{n:06d}" for n in range(start, count)]
            holding(client, tables, record, names, disbursed=True)
            points.append(views(services, calls))
    rows = []
    for n, (latencies, units, requests, counts) in zip(HOLDINGS, points, strict=True):
        rows.append((f"{n:,}", requests, f"{units:.1f}", *spread(latencies)[:2], counts))
    table(("holdings", "requests", "read units", "median", "p90", "orders"), rows)
    (low, low_units, *_), (high, high_units, *_) = points[0], points[-1]
    ratio, units = statistics.median(high) / statistics.median(low), high_units / low_units
    print(f"{HOLDINGS[-1]:,} vs {HOLDINGS[0]:,}: latency {ratio:.2f}x, units {units:.2f}x")
