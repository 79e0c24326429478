"""The reconciler's three jobs, run every minute: expire holds that were not
disbursed in time, match orders the stream left waiting, and audit each line's
counters against the orders that hold them (fundrouter.service.auditing, a bounded
slice of every line per run).

The table is the truth and the stream only a trigger: whatever a lost or late stream
record left undone is found here by time. The audit never changes a counter; drift is
reported with the line and the orders involved, for a person to look at.

A run takes what is due batch after batch until nothing is, or its time is mostly
spent. A batch's holds are expired line by line in parallel, each line's together:
one transaction moves up to about 95 orders and releases their sum on the line, so a
backlog of tens of thousands of holds on one hot line is a few hundred writes of its
item, never thousands of transactions contending for it.

One order or line that fails (contention past the retries, throttling, a malformed
item) never stops the run: it is counted in the report, by kind and with its ids
only, and the next run tries it again. Otherwise the oldest due order, failing every
time, would stop every hold behind it from expiring.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from fundrouter.domain.lifecycle import Transition, expire
from fundrouter.domain.lines import LineRecord, moved, rebalancing
from fundrouter.domain.orders import Order, OrderStatus, UnreadableOrder
from fundrouter.service.auditing import ClaimSample, Drift, RollingAudit
from fundrouter.service.ports import (
    AuditStore,
    Commit,
    DueOrders,
    HoldExpiries,
    LineListing,
    Matcher,
)

BATCH: Final = 200
# Expiry transactions in flight at once (boto3 clients are thread-safe).
EXPIRY_WORKERS: Final = 16
# Of the run's time budget, what is kept for the audit after the expiry loop.
AUDIT_RESERVE_SECONDS: Final = 10.0
# A claim's clock and the reconciler's differ by less than this: a daily share moved
# near a line's midnight is checked against the usage of both days.
DAY_SKEW: Final = timedelta(minutes=2)


class FailureKind(StrEnum):
    DUE = "due"  # listing what is due failed, in one shard (subject) or in all
    UNREADABLE = "unreadable"  # a due order's item does not decode
    EXPIRE = "expire"
    REDRIVE = "redrive"
    AUDIT = "audit"
    REBALANCE = "rebalance"


@dataclass(frozen=True)
class Failure:
    """What failed, on which order or line, and the error's type (never its text,
    which may quote the item)."""

    kind: FailureKind
    subject: str
    error: str


@dataclass
class ReconcileReport:
    expired: list[str] = field(default_factory=list)
    redriven: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    lines_audited: int = 0
    passes_completed: int = 0
    oldest_audit_seconds: int = 0
    drift: list[Drift] = field(default_factory=list)
    # Percent of each line's limit held (reserved + drawn), for the dashboard.
    utilization: dict[str, int] = field(default_factory=dict)
    # Moves of room between a sharded line's shards committed, by line.
    rebalanced: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def failed(self, kind: FailureKind, subject: str, error: Exception) -> None:
        self.failures.append(Failure(kind, subject, type(error).__name__))


class Reconciler:
    def __init__(
        self,
        orders: DueOrders,
        lines: LineListing,
        store: HoldExpiries,
        matcher: Matcher,
        clock: Callable[[], datetime],
        *,
        audit: AuditStore,
        workers: int = EXPIRY_WORKERS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._orders = orders
        self._lines = lines
        self._store = store
        self._matcher = matcher
        self._clock = clock
        self._audit = RollingAudit(audit, clock)
        self._workers = workers
        self._timer = timer

    def run(self, deadline: float | None = None) -> ReconcileReport:
        """Work until nothing is due, then audit. `deadline` is a reading of `timer`
        (the handler's, from the Lambda's remaining time) after which no new batch
        starts; the audit keeps AUDIT_RESERVE_SECONDS of it."""
        report = ReconcileReport()
        expiry_deadline = None if deadline is None else deadline - AUDIT_RESERVE_SECONDS
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            self._work_off(report, pool, expiry_deadline)
        self._audit_lines(report, deadline)
        return report

    def _work_off(
        self, report: ReconcileReport, pool: ThreadPoolExecutor, deadline: float | None
    ) -> None:
        # What is not done stays due (failed, or moved and still listed): it is asked
        # for again by count, never tried again within the run, so a run ends even
        # when some orders fail every time. What was done leaves the index; `seen`
        # skips it while the index has not caught up.
        seen: set[str] = set()
        stuck = 0
        while deadline is None or self._timer() < deadline:
            now = self._clock()
            limit = BATCH + stuck
            try:
                due = self._orders.due(
                    now, limit, lambda shard, error: report.failed(FailureKind.DUE, shard, error)
                )
            except Exception as error:  # the audit still runs
                report.failed(FailureKind.DUE, "byDue", error)
                return
            fresh = [order for order in due if _key(order) not in seen]
            if not fresh:
                return
            report.batches += 1
            seen |= {_key(order) for order in fresh}
            done = len(report.expired) + len(report.redriven)
            self._batch(fresh, now, report, pool)
            stuck += len(fresh) - (len(report.expired) + len(report.redriven) - done)
            if len(due) < limit:
                return  # the listing was not full: nothing else is due

    def _batch(
        self,
        due: list[Order | UnreadableOrder],
        now: datetime,
        report: ReconcileReport,
        pool: ThreadPoolExecutor,
    ) -> None:
        expiring: list[Order] = []
        with self._matcher.batch():
            for order in due:
                if isinstance(order, UnreadableOrder):
                    report.failures.append(Failure(FailureKind.UNREADABLE, order.key, order.error))
                elif order.status is OrderStatus.RECEIVED:
                    self._redrive(order, report)
                elif order.hold_expires_at is not None and order.hold_expires_at <= now:
                    expiring.append(order)
        # A line's holds together, each shard's of a sharded line (one release each).
        by_line: dict[tuple[str | None, int | None], list[tuple[Order, Transition]]] = {}
        for order in expiring:
            by_line.setdefault((order.line_id, order.shard), []).append((order, expire(order, now)))
        for group, outcomes in zip(
            by_line.values(), pool.map(self._store.expire_together, by_line.values()), strict=True
        ):
            for (order, _), outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    report.failed(FailureKind.EXPIRE, _key(order), outcome)
                elif outcome is Commit.COMMITTED:
                    report.expired.append(order.order_id)

    def _redrive(self, order: Order, report: ReconcileReport) -> None:
        try:
            outcome = self._matcher.match(order)
        except Exception as error:
            report.failed(FailureKind.REDRIVE, _key(order), error)
            return
        report.redriven[order.order_id] = outcome.outcome.value

    def _audit_lines(self, report: ReconcileReport, deadline: float | None) -> None:
        try:
            records = self._lines.list_lines()
        except Exception as error:
            report.failed(FailureKind.AUDIT, "lines", error)
            return
        for record in records:
            line = record.line
            held = line.counters.reserved + line.counters.drawn
            report.utilization[line.line_id] = held * 100 // line.config.limit
            if record.shards:
                try:
                    self._rebalance(record, report)
                except Exception as error:
                    report.failed(FailureKind.REBALANCE, line.line_id, error)
        samples = {
            r.line.line_id: ClaimSample(
                r.matched_total,
                r.line.counters.reserved,
                r.orders.get(OrderStatus.MATCHED.value, 0)
                + r.orders.get(OrderStatus.APPROVED.value, 0),
            )
            for r in records
        }
        run = self._audit.run(
            [record.line.line_id for record in records],
            lambda: deadline is not None and self._timer() >= deadline,
            samples,
            {r.line.line_id: len(r.shards) for r in records if r.shards},
        )
        report.lines_audited = run.lines_audited
        report.passes_completed = run.passes_completed
        report.oldest_audit_seconds = run.oldest_pass_age
        report.drift += run.drift
        for line_id, problem in run.failures:
            report.failed(FailureKind.AUDIT, line_id, problem)

    def _rebalance(self, record: LineRecord, report: ReconcileReport) -> None:
        """A sharded line's room evened out over its shards, removed shards' room
        moved to the others (domain.lines.rebalancing), one conditional move per
        transaction: one read of the line and at most two moves per shard a run,
        nothing for a line that is even. A move refused (claims moved the shares or
        counters since the read) is left for the next run."""
        now = self._clock()
        days = sorted({record.line.day_of(now - DAY_SKEW), record.line.day_of(now + DAY_SKEW)})
        fresh = self._lines.get(record.line.line_id, days)
        if fresh is None or not fresh.shards:
            return
        today = fresh.line.day_of(now)
        if fresh.short:  # closed: reopened once it has room again
            line = fresh.line
            if line.available >= 0 and (line.daily_room(today) or 0) >= 0:
                self._lines.reshare(fresh, now)
            return
        for move in rebalancing(fresh.shards, fresh.line.config.shards, today):
            if not self._lines.move_room(fresh, move, days):
                return
            fresh = replace(fresh, shards=moved(fresh.shards, move))
            report.rebalanced[fresh.line.line_id] = report.rebalanced.get(fresh.line.line_id, 0) + 1


def _key(order: Order | UnreadableOrder) -> str:
    if isinstance(order, UnreadableOrder):
        return order.key
    return f"{order.tenant_id}/{order.order_id}"
