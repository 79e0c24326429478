"""Section 8, on tests/support/world.py's World (moto, made cheaper by moto_speed):
(a) one order matched with N lines in the system (all but the world's two ranked
first and refusing its term): the match's transaction items and write units, plus the
GSI entries it changed (KEYS_ONLY: an entry is its keys and the table's plus 100 B;
1 write per KB when it appears or goes, 2 when its key moves, 0 unchanged);
(b) one order disbursed 1,000,000 and repaid 1 at a time through the API: the order
item's size, the last event's transaction, and what the item would weigh unbounded
(every entry now stored apart back in it)."""

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from common import create_tables, table
from fundrouter.persistence.codec import attribute_size, item_size
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.orders import order_pk
from moto import mock_aws

from tests.support import moto_speed, template
from tests.support.world import (
    KB,
    ORDER_ID,
    TENANT,
    World,
    add_refusing_lines,
    api,
    disbursed,
    repaid,
    stored_order,
    stored_sizes,
    submit,
    transaction_units,
)

ORDERS_TABLE = "bench-size-orders"
INDEX_OVERHEAD = 100


@contextmanager
def world() -> Iterator[World]:
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        moto_speed.speed_up_moto(patch)
        create_tables(boto3.client("dynamodb"), OrdersTable=ORDERS_TABLE)
        yield World(ORDERS_TABLE)


def index_units(before: dict[str, Any], after: dict[str, Any]) -> int:
    units = 0
    for index in template.create_table_kwargs("OrdersTable", ORDERS_TABLE)[
        "GlobalSecondaryIndexes"
    ]:
        names = [key["AttributeName"] for key in index["KeySchema"]]
        old, new = [before.get(n) for n in names], [after.get(n) for n in names]
        if old != new:
            entry = {name: after[name] for name in [*names, "pk", "sk"] if name in after}
            writes = 2 if None not in old and None not in new else 1
            units += writes * max(1, math.ceil((item_size(entry) + INDEX_OVERHEAD) / KB))
    return units


def report_match_cost(points: tuple[int, ...] = (10, 100, 1_000)) -> None:
    started, rows, first = time.perf_counter(), [], None
    for point in points:
        with world() as w:
            add_refusing_lines(w, 0, point - 2)
            sent = w.transactions()
            order = submit(w, "bench-order")
            before = stored_order(w, "bench-order")
            w.matcher.match(order)
            gsi = index_units(before, stored_order(w, "bench-order"))
            written = stored_sizes(w, sent[-1])
        size, units = sum(s for _, s in written), transaction_units(written) + gsi
        first = first or (size, units)
        parts = ", ".join(f"{kind} {s} B" for kind, s in written)
        rows.append(
            (
                f"{point:,}",
                f"{size:,}",
                units,
                gsi,
                f"{size / first[0]:.2f}x",
                f"{units / first[1]:.2f}x",
                parts,
            )
        )
    table(
        (
            "lines",
            "bytes",
            "WCU",
            "of GSI",
            "bytes",
            "WCU",
            f"items ({time.perf_counter() - started:.0f} s)",
        ),
        rows,
    )


def unbounded(w: World, order_size: int) -> int:
    """The order item plus every entry stored apart, each as a list element (a map
    less its keys)."""
    query: dict[str, Any] = {
        "TableName": ORDERS_TABLE,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :hist)",
        "ExpressionAttributeValues": {
            ":pk": {"S": order_pk(TENANT, ORDER_ID)},
            ":hist": {"S": HIST_PREFIX},
        },
    }
    total = order_size
    while True:
        page = w.client.query(**query)
        for item in page["Items"]:
            total += 1 + attribute_size(
                {"M": {k: v for k, v in item.items() if k not in {"pk", "sk"}}}
            )
        if "LastEvaluatedKey" not in page:
            return total
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def report(points: tuple[int, ...] = (10, 1_000, 10_000)) -> None:
    started, rows, done = time.perf_counter(), [], 0
    with world() as w:
        sent = w.transactions()
        disbursed(w)
        for point in points:
            for number in range(done, point):
                status, body = w.call(repaid(number))
                api.metrics.clear_metrics()  # as log_metrics does after each invocation
                if status != 200:
                    raise SystemExit(f"repayment {number}: {status} {body}")
            done = point
            size = item_size(stored_order(w))
            written = stored_sizes(w, sent[-1])
            parts = ", ".join(f"{kind} {s} B" for kind, s in written)
            whole = unbounded(w, size) / KB
            rows.append(
                (f"{point:,}", f"{size:,} B", f"{whole:,.0f} KB", transaction_units(written), parts)
            )
    took = f"last event's items ({time.perf_counter() - started:.0f} s)"
    table(("repayments", "order item", "unbounded", "WCU", took), rows)
