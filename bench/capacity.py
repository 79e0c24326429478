"""Section 7: the capacity model of tests/support/capacity.py (docs/capacity.md): orders/s
before any partition passes DynamoDB's 1,000 WCU/s. Section 8, on tests/support/world.py's
World (moto, made cheaper by moto_speed): (a) one order matched with N lines in the system
(all but the world's two ranked first and refusing its term): the match's transaction
items and write units, plus the GSI entries it changed, by the capacity model's rules;
(b) one order disbursed 1,000,000 and repaid 1 at a time through the API: the order
item's size, the last event's transaction, and what the item would weigh unbounded
(every entry now stored apart back in it)."""

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from common import header, moto, table, timed
from fundrouter.persistence.codec import attribute_size, item_size
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.orders import order_pk

from tests.support import capacity
from tests.support.capacity import GOALS, LIFE, SAMPLE, Change, index_writes, indexes
from tests.support.world import (
    KB,
    ORDER_ID,
    TENANT,
    World,
    add_refusing_lines,
    disbursed,
    repaid,
    stored_order,
    stored_sizes,
    submit,
    transaction_units,
)

ORDERS_TABLE = "bench-size-orders"


def report(rate: int = GOALS["system"]) -> None:
    header("7. Capacity model: orders/s before any partition passes 1,000 WCU/s (docs/capacity.md)")
    with moto():
        partitions, found = capacity.model()
    print(f"computed, not measured on AWS; one order's life: {', '.join(LIFE)};")
    print(f"{SAMPLE:,} orders of one tenant on one line; 'order' keys are an order's own")
    rows = []
    for p in partitions:
        mine = p.scope == "order"
        ceiling = "none" if mine or math.isinf(p.ceiling) else f"{p.ceiling:,.0f}/s"
        at = "-" if mine else f"{p.wcu_per_order * rate:,.0f}"
        whole = (f"{p.total_per_order:.2f}", f"{p.total_per_order * rate:,.0f}")
        rows.append((p.index.label, p.scope, f"{p.wcu_per_order:.2f}", at, ceiling, *whole))
    head = ("table / index", "scope", "WCU/order", f"at {rate:,}/s", "ceiling", "whole/order")
    table((*head, f"whole at {rate:,}/s (quota 40,000 WCU/s a table)"), rows)
    goals = (GOALS["system"], GOALS["tenant"], None)
    for name, value, goal in zip(
        ("system-wide", "one tenant", "one line"), found, goals, strict=True
    ):
        shown = "no shared partition" if math.isinf(value) else f"{value:,.0f} orders/s"
        print(f"  {name:<12} {shown}" + (f" (goal {goal:,})" if goal else ""))
    print("  system-wide assumes orders spread over enough lines, no tenant above its ceiling")
    header("8. Writes per matched order as lines grow; order item size after N repayments")
    report_match_cost()
    report_order_size()


@contextmanager
def world() -> Iterator[World]:
    with moto(faster=True, OrdersTable=ORDERS_TABLE):
        yield World(ORDERS_TABLE)


def report_match_cost(points: tuple[int, ...] = (10, 100, 1_000)) -> None:
    orders, *gsis = indexes(("OrdersTable",))
    started, rows, first = time.perf_counter(), [], None
    for point in points:
        with world() as w:
            add_refusing_lines(w, 0, point - 2)
            sent = w.transactions()
            order = submit(w, "bench-order")
            before = stored_order(w, "bench-order")
            w.matcher.match(order)
            change = Change("OrdersTable", before, stored_order(w, "bench-order"), True)
            gsi = sum(cost for i in gsis for _, cost in index_writes(i, orders.keys, change))
            written = stored_sizes(w, sent[-1])
        size, units = sum(s for _, s in written), transaction_units(written) + gsi
        first = first or (size, units)
        growth = (f"{size / first[0]:.2f}x", f"{units / first[1]:.2f}x")
        parts = ", ".join(f"{kind} {s} B" for kind, s in written)
        rows.append((f"{point:,}", f"{size:,}", units, gsi, *growth, parts))
    took = f"items ({time.perf_counter() - started:.0f} s)"
    table(("lines", "bytes", "WCU", "of GSI", "bytes", "WCU", took), rows)
    # Every claim writes the one line item (and day item): 1,000 WCU/s a partition.
    per_line = 1000 / max(transaction_units([i]) for i in written if i[0] in ("LINE", "DAY"))
    shards = ", ".join(f"K={k}: {k * per_line:,.0f}" for k in (1, 2, 4, 8, 16))
    print(f"claims/s a line (K capacity shards, each its own line and day item): {shards}")


def unbounded(w: World, order_size: int) -> int:
    """The order item plus every entry stored apart, each as a list element (a map
    less its keys)."""
    keys = {":pk": {"S": order_pk(TENANT, ORDER_ID)}, ":hist": {"S": HIST_PREFIX}}
    pages = w.client.get_paginator("query").paginate(
        TableName=ORDERS_TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :hist)",
        ExpressionAttributeValues=keys,
    )
    entries = [
        {k: v for k, v in i.items() if k not in {"pk", "sk"}} for p in pages for i in p["Items"]
    ]
    return order_size + sum(1 + attribute_size({"M": entry}) for entry in entries)


def report_order_size(points: tuple[int, ...] = (10, 1_000, 10_000)) -> None:
    started, rows, done = time.perf_counter(), [], 0
    with world() as w:
        sent = w.transactions()
        disbursed(w)
        for point in points:
            for number in range(done, point):
                timed(repaid(number), 200, **w.api_services)
            done, size = point, item_size(stored_order(w))
            written = stored_sizes(w, sent[-1])
            parts = ", ".join(f"{kind} {s} B" for kind, s in written)
            whole = f"{unbounded(w, size) / KB:,.0f} KB"
            rows.append((f"{point:,}", f"{size:,} B", whole, transaction_units(written), parts))
    took = f"last event's items ({time.perf_counter() - started:.0f} s)"
    table(("repayments", "order item", "unbounded", "WCU", took), rows)
