"""Section 10: (a) the audit's reads and a run's time at 1,000 to 100,000 open loans on
4 lines, on tests/support/fakes.py's in-memory book, during the first pass and after
it (paced to a pass in 12 hours); units from the items read with a measured order
item size (Query 0.5 a 4 KB, transactional read 2 a 4 KB an item). (b) 20,000 due
holds on moto (moto_speed), the real Reconciler and adapters, one expiry in flight."""

import math
import time
from datetime import timedelta

from common import AMOUNT, expired_holds, header, moto, table
from fundrouter.domain.clock import utc_now
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import DynamoOrderIndexes, order_item
from fundrouter.service.auditing import CUT_ORDERS, CUTS_PER_RUN
from fundrouter.service.reconciling import Reconciler

from tests.support import fakes

ORDERS_TABLE = "fundrouter-bench-reconciler-orders"
LINES_TABLE = "fundrouter-bench-reconciler-lines"
LOANS = (1_000, 10_000, 100_000)
BACKLOG = 20_000
UNIT = 4096


def report() -> None:
    header("10. Reconciler: audit cost per run by open loans, expiry throughput")
    order_bytes = item_size(order_item(fakes.book_with(1).orders.popitem()[1]))
    print(f"(a) in-memory book, {fakes.LINES} lines, order item {order_bytes} B")
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
    holds_per_minute, missed, batches = _backlog()
    print(
        f"(b) {BACKLOG:,} due holds: {holds_per_minute:,.0f} a minute in {batches} batches"
        f" of one run; missed {missed} (goal >= 10,000/min, none missed)"
    )


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


def _backlog() -> tuple[float, int, int]:
    tables = {"OrdersTable": ORDERS_TABLE, "LinesTable": LINES_TABLE}
    # faster: moto copies whole tables per transaction otherwise
    with moto(faster=True, **tables) as client:
        line_ids = [f"line-{n}" for n in range(fakes.LINES)]
        left = expired_holds(client, tables, line_ids, BACKLOG)
        lines = DynamoLineRepository(client, LINES_TABLE)
        events = DynamoOrderEvents(client, ORDERS_TABLE, lines)
        audit = DynamoAudit(client, ORDERS_TABLE, LINES_TABLE)
        indexes = DynamoOrderIndexes(client, ORDERS_TABLE)
        reconciler = Reconciler(
            indexes, lines, events, fakes.NoMatcher(), utc_now, audit=audit, workers=1
        )
        started = time.perf_counter()
        report = reconciler.run(deadline=time.monotonic() + 3600)
        elapsed = time.perf_counter() - started
        not_expired, reserved, _ = left()
        missed = not_expired + reserved // AMOUNT  # orders, and holds still on a line
        per_minute: float = len(report.expired) * 60 / elapsed
        return per_minute, missed, report.batches
