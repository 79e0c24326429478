"""The reconciler's three jobs, run every minute: expire holds that were not
disbursed in time, match orders the stream left waiting, and audit every line's
counters against the orders that hold them.

The table is the truth and the stream only a trigger: whatever a lost or late stream
record left undone is found here by time. The audit never changes a counter; drift is
reported with the line and the orders involved, for a person to look at.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from fundrouter.domain.lifecycle import expire
from fundrouter.domain.lines import LineRecord
from fundrouter.domain.orders import Holding, Order, OrderStatus
from fundrouter.service.matching import MatchService
from fundrouter.service.ports import Commit, OrderEventStore

BATCH: Final = 200


class DueOrders(Protocol):
    def due(self, now: datetime, limit: int) -> list[Order]: ...

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


@dataclass
class ReconcileReport:
    expired: list[str] = field(default_factory=list)
    redriven: dict[str, str] = field(default_factory=dict)
    lines_audited: int = 0
    drift: list[Drift] = field(default_factory=list)
    # Percent of each line's limit held (reserved + drawn), for the dashboard.
    utilization: dict[str, int] = field(default_factory=dict)


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
        with self._matcher.batch():
            for order in self._orders.due(now, BATCH):
                if order.status is OrderStatus.RECEIVED:
                    outcome = self._matcher.match(order)
                    report.redriven[order.order_id] = outcome.outcome.value
                elif (
                    order.hold_expires_at is not None
                    and order.hold_expires_at <= now
                    and self._expire(order, now)
                ):
                    report.expired.append(order.order_id)
        self._audit(report)
        return report

    def _expire(self, order: Order, now: datetime) -> bool:
        """One conditional transaction: EXPIRED and the reservation released. An
        order that moved meanwhile (disbursed at the last second) is left alone."""
        return self._store.commit(order, expire(order, now), None, None, now) is Commit.COMMITTED

    def _audit(self, report: ReconcileReport) -> None:
        for record in self._lines.list_lines():
            report.lines_audited += 1
            line = record.line
            held = line.counters.reserved + line.counters.drawn
            report.utilization[line.line_id] = held * 100 // line.config.limit
            drift = self._drift(record.line.line_id)
            # Orders move while the index is read and the index lags the table: only
            # a difference that is still there on a second look is drift.
            if drift is not None and self._drift(record.line.line_id) == drift:
                report.drift.append(drift)

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
