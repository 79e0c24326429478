"""Section 3: DynamoDB requests per match. The MatcherFunction's ``handle`` on moto,
one stream batch per order (stored RECEIVED as intake writes it), requests counted
on the service's client: a cold container (a new MatchService per order), a cached
configuration (the catalog read before, its TTL clock held still), and the first
ranked line filled by another claim after caching (its claim refused, the next wins).
How far one line scales on AWS is section 7's arithmetic; a claim's items and write
units are section 8's."""

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import header, line_config, moto, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.orders import Order
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository, order_item
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.triggers import streams

from tests.support.aws import FakeLambdaContext, put_all
from tests.support.factories import order_request
from tests.support.handlers import handler_module
from tests.support.orders import TENANT, Paths
from tests.support.requests import Answers

ORDERS_TABLE = "fundrouter-bench-match-orders"
LINES_TABLE = "fundrouter-bench-match-lines"
FIRST = "bench-first"  # ranks first in case 3, filled after the catalog was cached
LINES = {"bench-a": {"priority": 10}, "bench-b": {"funderId": "trust-b", "priority": 20}}


@dataclass
class Case:
    label: str
    orders: int = 0
    totals: Counter[str] = field(default_factory=Counter)
    sequences: Counter[tuple[str, ...]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def per_order(self) -> float:
        return sum(self.totals.values()) / self.orders if self.orders else math.nan


def stream_event(order: Order, sequence: int) -> dict[str, Any]:
    """The Orders stream's INSERT of `order`, a batch of its own."""
    item = order_item(order)
    stream = {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item}
    stream["SequenceNumber"] = str(10**20 + sequence)
    return {"Records": [{"eventID": f"b-{sequence}", "eventName": "INSERT", "dynamodb": stream}]}


def measure(client: Any, orders: int) -> list[Case]:
    matcher = handler_module("matcher", "matcher_handler")
    calls, lines = Answers(client), DynamoLineRepository(client, LINES_TABLE)
    store, stored = (
        DynamoMatchStore(client, ORDERS_TABLE, lines),
        DynamoOrderRepository(client, ORDERS_TABLE),
    )
    context, sequence = FakeLambdaContext("fundrouter-MatcherFunction"), itertools.count(1)
    for line_id, changes in LINES.items():
        lines.put_config(line_id, line_config(**changes), utc_now())

    def cached() -> Callable[[], MatchService]:
        """A service whose catalog has read the lines and the tenant's policy, its TTL
        clock held still so that it stays cached for the whole case."""
        catalog = LineCatalog(lines, monotonic=lambda: 0.0)
        catalog.lines()
        catalog.routing(TENANT)
        service = MatchService(catalog, store, utc_now)
        return lambda: service

    def run(label: str, prefix: str, service_for: Callable[[], MatchService]) -> Case:
        case = Case(label, orders)
        batch = [
            Order.received(TENANT, order_request(orderId=f"{prefix}-{n:05d}"), utc_now())
            for n in range(orders)
        ]
        put_all(client, ORDERS_TABLE, [order_item(order) for order in batch])  # not counted
        for order in batch:
            service = service_for()
            calls.reset()
            try:
                response = matcher.handle(stream_event(order, next(sequence)), context, service)
            finally:
                matcher.metrics.clear_metrics()  # log_metrics would flush per invocation
            if response["batchItemFailures"]:
                raise SystemExit(f"{label}: the matcher failed a record: {response}")
            case.totals.update(calls.names)
            case.sequences[tuple(calls.names)] += 1
        for order in batch:
            found = stored.get(TENANT, order.order_id) or order
            case.outcomes[f"{found.status} {found.line_id or '-'}"] += 1
            first = (found.decision.candidates if found.decision else None) or [None]
            if first[0] and (first[0].line_id, first[0].outcome) == (FIRST, "REFUSED"):
                case.outcomes[f"{FIRST} REFUSED first"] += 1
        return case

    cold = run("cold container", "cold", lambda: MatchService(LineCatalog(lines), store, utc_now))
    cached_case = run("cached config", "cached", cached())
    # A line that ranks first, cached while it has room for one order, then filled by
    # another claim: every order's first claim is refused, the next line's wins.
    first = lines.put_config(FIRST, line_config(priority=1, limit=2_000_000), utc_now())
    fallback_service = cached()
    Paths(client, ORDERS_TABLE, lines).claimed(first, 1_500_000, utc_now())
    fallback = run("first line full", "fallback", fallback_service)
    return [cold, cached_case, fallback]


def report(orders: int) -> list[Case]:
    header("3. DynamoDB requests per match (MatcherFunction, moto, in-process)")
    # One INFO line per order (the batch's, from fundrouter.triggers) would drown the figures.
    streams.logger.setLevel("WARNING")
    with moto(OrdersTable=ORDERS_TABLE, LinesTable=LINES_TABLE) as client:
        cases = measure(client, orders)
    print(f"{orders} orders a case; lines bench-a (priority 10), bench-b (20); the third")
    print(f"case adds {FIRST} (priority 1, room for one order when cached, then filled)")
    rows = []
    for case in cases:
        ops = ", ".join(f"{k} {v / case.orders:.2f}" for k, v in sorted(case.totals.items()))
        rows.append((case.label, f"{case.per_order():.2f}", ops))
        for sequence, count in case.sequences.most_common():
            rows.append(("", "", f"  {count:>4} orders: {' -> '.join(sequence) or 'no request'}"))
        outcome = ", ".join(f"{k}: {v}" for k, v in sorted(case.outcomes.items()))
        rows.append(("", "", f"  outcome: {outcome}"))
    table(("case", "requests/match", "per operation"), rows)
    return cases
