"""Section 10: the audit's reads and a run's time at 1,000 to 100,000 open loans on
4 lines, on tests/support/fakes.py's in-memory book, during the first pass and after
it (paced to a pass in 12 hours); units from the items read with a measured order
item size (Query 0.5 a 4 KB, transactional read 2 a 4 KB an item). The expiry of a
backlog is 4c's, by the deployed reconciler."""

import math
import time
from datetime import timedelta

from common import header, table
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.orders import order_item
from fundrouter.service.auditing import CUT_ORDERS, CUTS_PER_RUN

from tests.support import fakes

LOANS = (1_000, 10_000, 100_000)
UNIT = 4096


def report() -> None:
    header("10. Reconciler: audit cost per run by open loans")
    order_bytes = item_size(order_item(fakes.book_with(1).orders.popitem()[1]))
    print(f"in-memory book, {fakes.LINES} lines, order item {order_bytes} B")
    rows = []
    for loans in LOANS:
        book, clock = fakes.book_with(loans), fakes.Clock()
        subject, per_line = fakes.reconciler(book, clock), loans // fakes.LINES
        runs = -(-per_line // (CUTS_PER_RUN * CUT_ORDERS))
        reads, seconds, units = [], [], []
        for _ in range(runs + 1):  # the first pass, then one paced run
            clock.now += timedelta(minutes=1)
            before, logged, started = book.reads, len(book.log), time.perf_counter()
            subject.run()
            seconds.append(time.perf_counter() - started)
            reads.append(book.reads - before)
            units.append(_units(book.log[logged:], order_bytes))
        complete = all(s.last_pass_orders == per_line for s in book.audit.values())
        rows.append((
            f"{loans:,}", runs, f"{max(reads[:-1]):,}", f"{max(units[:-1]):,.1f}",
            f"{1000 * sum(seconds) / len(seconds):.0f}", f"{reads[-1]:,}", f"{units[-1]:,.1f}",
            "" if complete else "a line was not fully audited!",
        ))  # fmt: skip
    head = ("open loans", "1st pass runs", "items/run", "units/run", "ms/run", "paced items")
    table((*head, "paced units", ""), rows)


def _units(reads: list[tuple[str, int]], order_bytes: int) -> float:
    """Read units of a run's reads, each ("query" | "cut" | "get", items returned)."""
    total = 0.0
    for kind, items in reads:
        if kind == "query":
            total += 0.5 * max(1, math.ceil(items * order_bytes / UNIT))
        elif kind == "cut":
            total += 2 * (1 + (items - 1) * math.ceil(order_bytes / UNIT))
        else:
            total += 0.5 * items
    return total
