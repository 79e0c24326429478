"""Section 3: DynamoDB requests per match. The MatcherFunction's ``handle`` on moto,
one stream batch per order (events/matcher/new_order.json renamed), requests counted
on the service's client: a cold container (a new MatchService per order), a cached
configuration (the catalog read before, its TTL clock held still), and the first
ranked line filled by another claim after caching (its claim refused, the next wins)."""

import copy
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
from common import Calls, Context, create_tables, event, line_config, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.lines import LineRecord
from fundrouter.domain.orders import Decision
from fundrouter.persistence.codec import from_item, item_size
from fundrouter.persistence.lines import DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_item, order_pk
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.service.ports import ClaimResult
from fundrouter.triggers import streams
from moto import mock_aws

from tests.support.handlers import handler_module

NEW_ORDER_EVENT = "matcher/new_order.json"
ORDERS_TABLE = "fundrouter-bench-match-orders"
LINES_TABLE = "fundrouter-bench-match-lines"
FIRST = "bench-first"  # ranks first in case 3, filled after the catalog was cached
LINE_A = "bench-a"
LINE_B = "bench-b"


@dataclass
class Case:
    label: str
    expected: str
    orders: int = 0
    totals: Counter[str] = field(default_factory=Counter)
    sequences: Counter[tuple[str, ...]] = field(default_factory=Counter)
    matched_to: Counter[str] = field(default_factory=Counter)
    refused_first: int = 0

    def per_order(self) -> float:
        return sum(self.totals.values()) / self.orders if self.orders else math.nan


@dataclass
class ItemSizes:
    """Estimated DynamoDB item sizes (bytes) of what a claim writes."""

    line: int
    day: int
    order: int


def stream_event(order_id: str, sequence: int) -> dict[str, Any]:
    """events/matcher/new_order.json with its order renamed to `order_id`."""
    record = copy.deepcopy(event(NEW_ORDER_EVENT)["Records"][0])
    image = record["dynamodb"]["NewImage"]
    old_id = image["orderId"]["S"]
    pk = order_pk(image["tenantId"]["S"], order_id)
    image["orderId"]["S"] = order_id
    image["pk"]["S"] = pk
    record["dynamodb"]["Keys"]["pk"]["S"] = pk
    for key in ("gsi1sk", "gsi2sk"):
        image[key]["S"] = image[key]["S"].replace(old_id, order_id)
    record["eventID"] = f"bench-{sequence:06d}"
    record["dynamodb"]["SequenceNumber"] = str(10**20 + sequence)
    return {"Records": [record]}


class Bench:
    """Tables on moto, the matcher module and one counted client."""

    def __init__(self, matcher: Any, orders: int) -> None:
        self.matcher = matcher
        self.orders = orders
        self.client = boto3.client("dynamodb")
        create_tables(self.client, OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE)
        self.calls = Calls(self.client)
        self.lines = DynamoLineRepository(self.client, LINES_TABLE)
        self.store = DynamoMatchStore(self.client, ORDERS_TABLE, self.lines)
        self.context = Context("fundrouter-MatcherFunction")
        self.sequence = 0
        self.tenant = event(NEW_ORDER_EVENT)["Records"][0]["dynamodb"]["NewImage"]["tenantId"]["S"]

    def service(self, catalog: LineCatalog | None = None) -> MatchService:
        """Built as matcher_handler.match_service() builds it, on the counted client."""
        return MatchService(catalog or LineCatalog(self.lines), self.store, utc_now)

    def cached_catalog(self) -> LineCatalog:
        """A catalog that has read the lines and the tenant's policy, its TTL clock
        held still so that it stays cached for the whole case."""
        catalog = LineCatalog(self.lines, monotonic=lambda: 0.0)
        catalog.lines()
        catalog.routing(self.tenant)
        return catalog

    def claim_elsewhere(self, record: LineRecord, amount: int) -> None:
        """Another order of `amount`, stored and claimed on `record`'s line as the
        matcher claims it (not counted)."""
        image = stream_event("bench-other", 0)["Records"][0]["dynamodb"]["NewImage"]
        order = order_from_item(image).model_copy(update={"amount": amount})
        self.client.put_item(TableName=ORDERS_TABLE, Item=order_item(order))
        now = utc_now()
        hold = now + timedelta(seconds=record.line.config.hold_seconds)
        decision = Decision(strategy="PRIORITY", candidates=[])
        attempt = self.store.claim(order, record, now, hold, decision)
        if attempt.result is not ClaimResult.CLAIMED:
            raise SystemExit(f"the other claim on {record.line.line_id} failed: {attempt}")

    def run(self, case: Case, prefix: str, service_for: Callable[[], MatchService]) -> Case:
        events = []
        for index in range(self.orders):
            self.sequence += 1
            batch = stream_event(f"{prefix}-{index:05d}", self.sequence)
            # Stored as intake stored it; not counted.
            self.client.put_item(
                TableName=ORDERS_TABLE, Item=batch["Records"][0]["dynamodb"]["NewImage"]
            )
            events.append(batch)
        for batch in events:
            service = service_for()
            self.calls.reset()
            try:
                response = self.matcher.handle(batch, self.context, service)
            finally:
                self.matcher.metrics.clear_metrics()  # log_metrics would flush per invocation
            if response["batchItemFailures"]:
                raise SystemExit(f"{case.label}: the matcher failed a record: {response}")
            case.orders += 1
            case.totals.update(self.calls.names)
            case.sequences[tuple(self.calls.names)] += 1
        self.outcomes(case, prefix)
        return case

    def outcomes(self, case: Case, prefix: str) -> None:
        for index in range(self.orders):
            item = self.client.get_item(
                TableName=ORDERS_TABLE,
                Key={
                    "pk": {"S": order_pk(self.tenant, f"{prefix}-{index:05d}")},
                    "sk": {"S": ORDER_SK},
                },
                ConsistentRead=True,
            )["Item"]
            order = from_item(item)
            case.matched_to[f"{order['status']} {order.get('lineId', '-')}"] += 1
            first = (order.get("decision") or {}).get("candidates", [{}])[0]
            if first.get("lineId") == FIRST and first.get("outcome") == "REFUSED":
                case.refused_first += 1

    def sizes(self) -> ItemSizes:
        def raw(table: str, pk: str, sk: str) -> dict[str, Any]:
            found: dict[str, Any] = self.client.get_item(
                TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
            )["Item"]
            return found

        record = self.lines.get(LINE_A)
        if record is None:
            raise SystemExit(f"line {LINE_A} missing on moto")
        day = record.line.day_of(utc_now())
        order = raw(ORDERS_TABLE, order_pk(self.tenant, "cold-00000"), ORDER_SK)
        return ItemSizes(
            line=item_size(raw(LINES_TABLE, line_pk(LINE_A), "LINE")),
            day=item_size(raw(LINES_TABLE, day_key(LINE_A, day)["pk"]["S"], "DAY")),
            order=item_size(order),
        )


def measure(matcher: Any, orders: int) -> tuple[list[Case], ItemSizes]:
    with mock_aws():
        bench = Bench(matcher, orders)
        now = utc_now()
        bench.lines.put_config(LINE_A, line_config(priority=10), now)
        bench.lines.put_config(LINE_B, line_config(funderId="trust-b", priority=20), now)

        cold = bench.run(
            Case("cold container", "GetItem (marker) + Query + GetItem + TransactWriteItems"),
            "cold",
            bench.service,
        )

        cached_service = bench.service(bench.cached_catalog())
        cached = bench.run(
            Case("cached config", "TransactWriteItems"), "cached", lambda: cached_service
        )

        # A line that ranks first, cached while it has room for one order, then filled
        # by another claim: every order's first claim is refused, the next line's wins.
        bench.lines.put_config(FIRST, line_config(priority=1, limit=2_000_000), now)
        fallback_service = bench.service(bench.cached_catalog())
        first = bench.lines.get(FIRST)
        if first is None:
            raise SystemExit(f"line {FIRST} missing on moto")
        bench.claim_elsewhere(first, 1_500_000)
        fallback = bench.run(
            Case("first line full", "TransactWriteItems x 2"), "fallback", lambda: fallback_service
        )
        return [cold, cached, fallback], bench.sizes()


def report(orders: int) -> tuple[list[Case], ItemSizes]:
    matcher = handler_module("matcher", "matcher_handler")
    # One INFO line per order (the batch's, from fundrouter.triggers) would drown the figures.
    streams.logger.setLevel("WARNING")
    cases, sizes = measure(matcher, orders)
    print(f"{orders} orders a case; lines {LINE_A} (priority 10), {LINE_B} (20); the third")
    print(f"case adds {FIRST} (priority 1, room for one order when cached, then filled)")
    rows = []
    for case in cases:
        ops = ", ".join(f"{k} {v / case.orders:.2f}" for k, v in sorted(case.totals.items()))
        rows.append((case.label, f"{case.per_order():.2f}", f"{ops} (expected {case.expected})"))
        for sequence, count in case.sequences.most_common():
            rows.append(("", "", f"  {count:>4} orders: {' -> '.join(sequence) or 'no request'}"))
        outcome = ", ".join(f"{k}: {v}" for k, v in sorted(case.matched_to.items()))
        if case.label == "first line full":
            outcome += f"; {FIRST} REFUSED first: {case.refused_first}"
        rows.append(("", "", f"  outcome: {outcome}"))
    table(("case", "requests/match", "per operation"), rows)
    return cases, sizes
