"""Section 3: DynamoDB requests per match. The MatcherFunction's ``handle`` on moto,
one stream batch per order (events/matcher/new_order.json renamed), requests counted
on the service's client: a cold container (a new MatchService per order), a cached
configuration (the catalog read before, its TTL clock held still), and the first
ranked line filled by another claim after caching (its claim refused, the next wins).
Section 5: how far one line scales on AWS, by arithmetic from DynamoDB's published
limits and the sizes of the items a claim wrote in section 3."""

import copy
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from common import create_tables, header, line_config, order_key, table
from fundrouter.domain.clock import utc_now
from fundrouter.persistence.codec import from_item, item_size
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import order_pk
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.triggers import streams
from moto import mock_aws

from tests.support.aws import FakeLambdaContext
from tests.support.events import load_event
from tests.support.handlers import handler_module
from tests.support.orders import Paths
from tests.support.requests import Answers
from tests.support.world import transaction_units

RECORD = load_event("matcher/new_order.json")["Records"][0]
TENANT = RECORD["dynamodb"]["NewImage"]["tenantId"]["S"]
ORDERS_TABLE = "fundrouter-bench-match-orders"
LINES_TABLE = "fundrouter-bench-match-lines"
FIRST = "bench-first"  # ranks first in case 3, filled after the catalog was cached
LINES: dict[str, dict[str, Any]] = {
    "bench-a": {"priority": 10},
    "bench-b": {"funderId": "trust-b", "priority": 20},
}
PARTITION_WCU_PER_S = 1000  # per partition, and so per item
SHARDS = (1, 2, 4, 8, 16)


@dataclass
class Case:
    label: str
    orders: int = 0
    totals: Counter[str] = field(default_factory=Counter)
    sequences: Counter[tuple[str, ...]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    refused_first: int = 0

    def per_order(self) -> float:
        return sum(self.totals.values()) / self.orders if self.orders else math.nan


def stream_event(order_id: str, sequence: int) -> dict[str, Any]:
    """events/matcher/new_order.json with its order renamed to `order_id`."""
    record = copy.deepcopy(RECORD)
    image = record["dynamodb"]["NewImage"]
    old_id, pk = image["orderId"]["S"], order_pk(TENANT, order_id)
    image["orderId"]["S"] = order_id
    image["pk"]["S"] = record["dynamodb"]["Keys"]["pk"]["S"] = pk
    for key in ("gsi1sk", "gsi2sk"):
        image[key]["S"] = image[key]["S"].replace(old_id, order_id)
    record["eventID"] = f"bench-{sequence:06d}"
    record["dynamodb"]["SequenceNumber"] = str(10**20 + sequence)
    return {"Records": [record]}


def measure(orders: int) -> tuple[list[Case], dict[str, int]]:
    matcher = handler_module("matcher", "matcher_handler")
    client = boto3.client("dynamodb")
    create_tables(client, OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE)
    calls, lines = Answers(client), DynamoLineRepository(client, LINES_TABLE)
    store, context = DynamoMatchStore(client, ORDERS_TABLE, lines), FakeLambdaContext()
    context.function_name = "fundrouter-MatcherFunction"
    for line_id, changes in LINES.items():
        lines.put_config(line_id, line_config(**changes), utc_now())
    sequence = 0

    def cached() -> Callable[[], MatchService]:
        """A service whose catalog has read the lines and the tenant's policy, its TTL
        clock held still so that it stays cached for the whole case."""
        catalog = LineCatalog(lines, monotonic=lambda: 0.0)
        catalog.lines()
        catalog.routing(TENANT)
        service = MatchService(catalog, store, utc_now)
        return lambda: service

    def run(label: str, prefix: str, service_for: Callable[[], MatchService]) -> Case:
        nonlocal sequence
        case, ids = Case(label), [f"{prefix}-{index:05d}" for index in range(orders)]
        batches = [stream_event(order_id, sequence := sequence + 1) for order_id in ids]
        for batch in batches:  # stored as intake stored it; not counted
            client.put_item(
                TableName=ORDERS_TABLE, Item=batch["Records"][0]["dynamodb"]["NewImage"]
            )
        for batch in batches:
            service = service_for()
            calls.reset()
            try:
                response = matcher.handle(batch, context, service)
            finally:
                matcher.metrics.clear_metrics()  # log_metrics would flush per invocation
            if response["batchItemFailures"]:
                raise SystemExit(f"{label}: the matcher failed a record: {response}")
            case.orders += 1
            case.totals.update(calls.names)
            case.sequences[tuple(calls.names)] += 1
        for order_id in ids:
            key = order_key(TENANT, order_id)
            order = from_item(client.get_item(TableName=ORDERS_TABLE, Key=key)["Item"])
            case.outcomes[f"{order['status']} {order.get('lineId', '-')}"] += 1
            first = (order.get("decision") or {}).get("candidates", [{}])[0]
            case.refused_first += first.get("lineId") == FIRST and first.get("outcome") == "REFUSED"
        return case

    cold = run("cold container", "cold", lambda: MatchService(LineCatalog(lines), store, utc_now))
    cached_case = run("cached config", "cached", cached())
    # A line that ranks first, cached while it has room for one order, then filled by
    # another claim: every order's first claim is refused, the next line's wins.
    first = lines.put_config(FIRST, line_config(priority=1, limit=2_000_000), utc_now())
    fallback_service = cached()
    Paths(client, ORDERS_TABLE, lines).claimed(first, 1_500_000, utc_now())
    fallback = run("first line full", "fallback", fallback_service)

    def size(table_name: str, key: dict[str, Any]) -> int:
        return item_size(client.get_item(TableName=table_name, Key=key)["Item"])

    sizes = {
        "line": size(LINES_TABLE, {"pk": {"S": line_pk("bench-a")}, "sk": {"S": LINE_SK}}),
        "day": size(LINES_TABLE, day_key("bench-a", first.line.day_of(utc_now()))),
        "order": size(ORDERS_TABLE, order_key(TENANT, "cold-00000")),
    }
    return [cold, cached_case, fallback], sizes


def report(orders: int) -> tuple[list[Case], dict[str, int]]:
    header("3. DynamoDB requests per match (MatcherFunction, moto, in-process)")
    # One INFO line per order (the batch's, from fundrouter.triggers) would drown the figures.
    streams.logger.setLevel("WARNING")
    with mock_aws():
        cases, sizes = measure(orders)
    print(f"{orders} orders a case; lines bench-a (priority 10), bench-b (20); the third")
    print(f"case adds {FIRST} (priority 1, room for one order when cached, then filled)")
    rows = []
    for case in cases:
        ops = ", ".join(f"{k} {v / case.orders:.2f}" for k, v in sorted(case.totals.items()))
        rows.append((case.label, f"{case.per_order():.2f}", ops))
        for sequence, count in case.sequences.most_common():
            rows.append(("", "", f"  {count:>4} orders: {' -> '.join(sequence) or 'no request'}"))
        outcome = ", ".join(f"{k}: {v}" for k, v in sorted(case.outcomes.items()))
        if case.label == "first line full":
            outcome += f"; {FIRST} REFUSED first: {case.refused_first}"
        rows.append(("", "", f"  outcome: {outcome}"))
    table(("case", "requests/match", "per operation"), rows)
    return cases, sizes


def transactional_wcu(size: int) -> int:
    return transaction_units([("", size)])


def report_scale(sizes: dict[str, int]) -> None:
    header("5. How far one line scales on AWS (arithmetic, not a measurement)")
    print(f"NOT a measurement: {PARTITION_WCU_PER_S:,} WCU/s a partition (so an item), 2 WCU a")
    print("KB in a transaction; a claim is one TransactWriteItems of three items:")
    rows = [
        (what, key, f"~{sizes[what]} B", f"{transactional_wcu(sizes[what])} WCU", note)
        for what, key, note in (
            ("line", "LINE#<line>, LINE", "per item: no split lifts it"),
            ("day", "LINE#<line>#DAY#<date>", "its own partition"),
            ("order", "T#<tenant>#O#<order>", "one per order: spread out"),
        )
    ]
    table(("item", "key", "size", "cost", "claims/s on its partition"), rows)
    per_line = PARTITION_WCU_PER_S / transactional_wcu(sizes["line"])
    per_day = PARTITION_WCU_PER_S / transactional_wcu(sizes["day"])
    print(f"so ~{per_line:,.0f} claims/s a line (the day item alone: {per_day:,.0f}), less")
    print("under contention (TransactionConflict cancels, never queues); releases, draws and")
    print("restores spend the same line item's budget.")
    print("Not built: K shard items LINE#<line>#S<k> (limit/K each, own day items; a claim")
    print("picks one by the order id's hash, falls back to another) on K partitions:")
    print("  " + ", ".join(f"K={k}: {k * per_line:,.0f}" for k in SHARDS) + " claims/s;")
    print("  costs: fragmented capacity, rebalancing, counters summed over K, table quota.")
