"""In-memory stand-ins for the repository ports, for unit tests of the services."""

import base64
import bisect
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.lifecycle import OrderEvent, Transition
from fundrouter.domain.lines import Line, LineCounters, LineRecord
from fundrouter.domain.orders import (
    Customer,
    HistoryEntry,
    Holding,
    Order,
    OrderStatus,
    UnreadableOrder,
)
from fundrouter.domain.paging import Page
from fundrouter.persistence.orders import due_at, order_ids, order_pk
from fundrouter.service.auditing import AuditState, Cut
from fundrouter.service.matching import MatchReport
from fundrouter.service.ports import Commit
from fundrouter.service.reconciling import Reconciler

from tests.support.factories import line_config


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self.orders: dict[tuple[str, str], Order] = {}
        self.writes = 0

    def add(self, order: Order) -> Order | None:
        key = (order.tenant_id, order.order_id)
        if key in self.orders:
            return self.orders[key]
        self.writes += 1
        self.orders[key] = order
        return None

    def get(self, tenant_id: str, order_id: str) -> Order | None:
        return self.orders.get((tenant_id, order_id))

    def list_for_tenant(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        mine = sorted(
            (
                o
                for (tenant, _), o in self.orders.items()
                if tenant == tenant_id and (status is None or o.status == status)
            ),
            key=lambda o: (o.created_at, o.order_id),
            reverse=True,
        )
        start = 0
        if cursor is not None:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError as error:
                raise InvalidCursor from error
        end = start + limit
        more = end < len(mine)
        next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if more else None
        return Page(items=mine[start:end], next_cursor=next_cursor)


class InMemoryBook:
    """Lines, their orders and the audit's state in memory, behind the reconciler's
    ports (DueOrders, LineCounters, the OrderEventStore commit, AuditStore): fast
    enough for 100,000 open loans. `reads` counts the items every read returns, as
    DynamoDB would bill them (a listed key, an item in a cut, a due order)."""

    def __init__(self) -> None:
        self.lines: dict[str, LineRecord] = {}
        self.orders: dict[str, Order] = {}
        self.audit: dict[str, AuditState] = {}
        self._by_line: dict[str, list[str]] = {}  # pk order, as the byLine index
        self.reads = 0
        self.log: list[tuple[str, int]] = []  # ("query" | "cut" | "get", items) per read
        self.commits = 0
        self._lock = threading.Lock()  # a commit is atomic, as a transaction is

    # ------------------------------------------------------------ setting up

    def add_line(self, record: LineRecord) -> None:
        self.lines[record.line.line_id] = record
        self._by_line.setdefault(record.line.line_id, [])

    def put(self, order: Order) -> None:
        """Store `order` as it is, moving its line's counters by what it now holds
        (a writer's transaction: order and counters together)."""
        pk = order_pk(order.tenant_id, order.order_id)
        before = self.orders.get(pk)
        for old, sign in ((before, -1), (order, 1)):
            if old is not None and old.line_id is not None and old.status in _HOLDING:
                self._move(old.line_id, sign * _reserved(old), sign * _drawn(old))
                index = self._by_line[old.line_id]
                if sign < 0:
                    index.pop(bisect.bisect_left(index, pk))
                else:
                    bisect.insort(index, pk)
        self.orders[pk] = order

    def drift(self, line_id: str, reserved: int) -> None:
        """A counter moved outside any transaction: what the audit must find."""
        self._move(line_id, reserved, 0)

    def _move(self, line_id: str, reserved: int, drawn: int) -> None:
        record = self.lines[line_id]
        counters = record.line.counters
        moved = LineCounters(counters.reserved + reserved, counters.drawn + drawn)
        self.lines[line_id] = replace(record, line=replace(record.line, counters=moved))

    # ------------------------------------------------------------ the reconciler's ports

    def due(
        self, now: datetime, limit: int, unlisted: Callable[[str, Exception], None]
    ) -> list[Order | UnreadableOrder]:
        due = sorted(
            ((at, o) for o in self.orders.values() if (at := due_at(o)) is not None and at <= now),
            key=lambda pair: pair[0],
        )[:limit]
        self._read("query", len(due))
        return [order for _, order in due]

    def list_lines(self) -> list[LineRecord]:
        self._read("query", len(self.lines))
        return sorted(self.lines.values(), key=lambda r: r.line.line_id)

    def commit(
        self,
        before: Order,
        transition: Transition,
        event: OrderEvent | None,
        now: datetime,
    ) -> Commit:
        with self._lock:
            stored = self.orders[order_pk(before.tenant_id, before.order_id)]
            if (stored.version, stored.status) != (before.version, before.status):
                return Commit.ORDER_MOVED
            self.commits += 1
            self.put(transition.order)
            return Commit.COMMITTED

    def expire_together(
        self, expiring: Sequence[tuple[Order, Transition]]
    ) -> list[Commit | Exception]:
        return [
            self.commit(before, transition, None, transition.order.updated_at)
            for before, transition in expiring
        ]

    def holding_keys(
        self, line_id: str, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        index = self._by_line.get(line_id, [])
        start = 0 if cursor is None else bisect.bisect_right(index, cursor)
        page = index[start : start + limit]
        self._read("query", len(page))
        keys = [ids for pk in page if (ids := order_ids(pk)) is not None]
        return keys, page[-1] if len(page) == limit else None

    def cut(self, line_id: str, keys: list[tuple[str, str]]) -> Cut | None:
        self._read("cut", 1 + len(keys))
        record = self.lines.get(line_id)
        if record is None:
            return None
        orders = [self.orders.get(order_pk(*key)) for key in keys]
        holdings = [
            Holding(o.tenant_id, o.order_id, o.status, o.reserved, o.outstanding)
            for o in orders
            if o is not None and o.line_id == line_id and o.status in _HOLDING
        ]
        counters = record.line.counters
        return Cut(counters.reserved, counters.drawn, holdings)

    def audit_states(self, line_ids: list[str]) -> dict[str, AuditState]:
        found = {i: self.audit[i] for i in line_ids if i in self.audit}
        self._read("get", len(found))
        return found

    def _read(self, kind: str, items: int) -> None:
        self.reads += items
        self.log.append((kind, items))

    def save_audit(self, state: AuditState) -> None:
        self.audit[state.line_id] = state


_HOLDING = frozenset({OrderStatus.MATCHED, OrderStatus.APPROVED, OrderStatus.DISBURSED})


def _reserved(order: Order) -> int:
    return order.reserved if order.status in {OrderStatus.MATCHED, OrderStatus.APPROVED} else 0


def _drawn(order: Order) -> int:
    return order.outstanding if order.status is OrderStatus.DISBURSED else 0


class NoMatcher:
    """For a reconciler that is given no order to match."""

    def batch(self) -> AbstractContextManager[None]:
        return nullcontext()

    def match(self, order: Order) -> MatchReport:
        raise AssertionError(f"{order.order_id} was not expected to be matched")


# ------------------------------------------------------------ open loans at scale

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LINES = 4
HOLD = 1_000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def book_with(loans: int, holds: int = 0) -> InMemoryBook:
    """`loans` DISBURSED and `holds` MATCHED orders spread over LINES lines; the
    holds expired a minute ago."""
    book = InMemoryBook()
    config = line_config(
        funderId="bank", name="line", limit=10**15, maxAmount=10**9, aprBps=1000, priority=1
    )
    for index in range(LINES):
        line = Line(f"line-{index}", config, LineCounters())
        book.add_line(LineRecord(line, 1, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"))
    template = Order(
        order_id="o",
        tenant_id="tenant",
        amount=HOLD,
        currency="CNY",
        term_months=12,
        product="consumer",
        customer=Customer(id="c"),
        metadata={},
        status=OrderStatus.DISBURSED,
        outstanding=HOLD,
        claim_day="2026-11-24",
        history=[HistoryEntry(status=OrderStatus.RECEIVED, at=START)],
        content_hash="h",
        created_at=START,
        updated_at=START,
        version=3,
    )
    expired_at = START - timedelta(minutes=1)
    for number in range(loans + holds):
        fields: dict[str, object] = {
            "order_id": f"o-{number:07d}",
            "line_id": f"line-{number % LINES}",
        }
        if number >= loans:
            fields |= {
                "status": OrderStatus.MATCHED,
                "reserved": HOLD,
                "outstanding": 0,
                "hold_expires_at": expired_at,
            }
        book.put(template.model_copy(update=fields))
    return book


def reconciler(book: InMemoryBook, clock: Clock) -> Reconciler:
    return Reconciler(book, book, book, NoMatcher(), clock, audit=book, workers=4)
