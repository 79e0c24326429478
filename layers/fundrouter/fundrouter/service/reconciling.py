"""The reconciler's three jobs, run every minute: expire holds that were not
disbursed in time, match orders the stream left waiting, and audit every line's
counters against the orders that hold them.

The table is the truth and the stream only a trigger: whatever a lost or late stream
record left undone is found here by time. The audit never changes a counter; drift is
reported with the line and the orders involved, for a person to look at.

One order or line that fails (contention past the retries, throttling, a malformed
item) never stops the run: it is counted in the report, by kind and with its ids
only, and the next run tries it again. Otherwise the oldest due order, failing every
time, would stop every hold behind it from expiring.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

from fundrouter.domain.lifecycle import expire
from fundrouter.domain.lines import LineRecord
from fundrouter.domain.orders import Holding, Order, OrderStatus, UnreadableOrder
from fundrouter.service.matching import MatchService
from fundrouter.service.ports import Commit, OrderEventStore

BATCH: Final = 200


class DueOrders(Protocol):
    def due(self, now: datetime, limit: int) -> list[Order | UnreadableOrder]: ...

    def holdings(self, line_id: str) -> list[Holding]: ...


class LineCounters(Protocol):
    def list_lines(self) -> list[LineRecord]: ...

    def get(self, line_id: str, days: list[str]) -> LineRecord | None: ...


@dataclass(frozen=True)
class Drift:
    line_id: str
    reserved: int
    expected_reserved: int
    drawn: int
    expected_drawn: int
    orders: tuple[str, ...]

    @property
    def amount(self) -> int:
        return abs(self.reserved - self.expected_reserved) + abs(self.drawn - self.expected_drawn)


class FailureKind(StrEnum):
    DUE = "due"  # listing what is due failed: nothing expired or re-driven this run
    UNREADABLE = "unreadable"  # a due order's item does not decode
    EXPIRE = "expire"
    REDRIVE = "redrive"
    AUDIT = "audit"


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
    lines_audited: int = 0
    drift: list[Drift] = field(default_factory=list)
    # Percent of each line's limit held (reserved + drawn), for the dashboard.
    utilization: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def failed(self, kind: FailureKind, subject: str, error: Exception) -> None:
        self.failures.append(Failure(kind, subject, type(error).__name__))


class Reconciler:
    def __init__(
        self,
        orders: DueOrders,
        lines: LineCounters,
        store: OrderEventStore,
        matcher: MatchService,
        clock: Callable[[], datetime],
    ) -> None:
        self._orders = orders
        self._lines = lines
        self._store = store
        self._matcher = matcher
        self._clock = clock

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self._clock()
        try:
            due = self._orders.due(now, BATCH)
        except Exception as error:  # the audit still runs
            report.failed(FailureKind.DUE, "byDue", error)
            due = []
        with self._matcher.batch():
            for order in due:
                if isinstance(order, UnreadableOrder):
                    report.failures.append(Failure(FailureKind.UNREADABLE, order.key, order.error))
                    continue
                self._one(order, now, report)
        self._audit(report)
        return report

    def _one(self, order: Order, now: datetime, report: ReconcileReport) -> None:
        subject = f"{order.tenant_id}/{order.order_id}"
        if order.status is OrderStatus.RECEIVED:
            try:
                outcome = self._matcher.match(order)
            except Exception as error:
                report.failed(FailureKind.REDRIVE, subject, error)
                return
            report.redriven[order.order_id] = outcome.outcome.value
        elif order.hold_expires_at is not None and order.hold_expires_at <= now:
            try:
                expired = self._expire(order, now)
            except Exception as error:
                report.failed(FailureKind.EXPIRE, subject, error)
                return
            if expired:
                report.expired.append(order.order_id)

    def _expire(self, order: Order, now: datetime) -> bool:
        """One conditional transaction: EXPIRED and the reservation released. An
        order that moved meanwhile (disbursed at the last second) is left alone."""
        return self._store.commit(order, expire(order, now), None, now) is Commit.COMMITTED

    def _audit(self, report: ReconcileReport) -> None:
        try:
            records = self._lines.list_lines()
        except Exception as error:
            report.failed(FailureKind.AUDIT, "lines", error)
            return
        for record in records:
            line = record.line
            held = line.counters.reserved + line.counters.drawn
            report.utilization[line.line_id] = held * 100 // line.config.limit
            try:
                drift = self._drift(line.line_id)
                # Orders move while the index is read and the index lags the table:
                # only a difference that is still there on a second look is drift.
                if drift is not None and self._drift(line.line_id) == drift:
                    report.drift.append(drift)
            except Exception as error:
                report.failed(FailureKind.AUDIT, line.line_id, error)
                continue
            report.lines_audited += 1

    def _drift(self, line_id: str) -> Drift | None:
        before = self._lines.get(line_id, [])
        holdings = self._orders.holdings(line_id)
        after = self._lines.get(line_id, [])
        if before is None or after is None or before.line.counters != after.line.counters:
            return None
        reserved = sum(
            h.reserved for h in holdings if h.status in {OrderStatus.MATCHED, OrderStatus.APPROVED}
        )
        drawn = sum(h.outstanding for h in holdings if h.status is OrderStatus.DISBURSED)
        counters = after.line.counters
        if (counters.reserved, counters.drawn) == (reserved, drawn):
            return None
        return Drift(
            line_id=line_id,
            reserved=counters.reserved,
            expected_reserved=reserved,
            drawn=counters.drawn,
            expected_drawn=drawn,
            orders=tuple(sorted(f"{h.tenant_id}/{h.order_id}" for h in holdings)),
        )
