"""In-memory stand-ins for the ports, and the one fake clock, for unit tests of the
services. Imports nothing from tests/: bench/reconciler_scale.py loads it by path."""

import base64
import bisect
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.lifecycle import OrderEvent, Transition
from fundrouter.domain.lines import (
    Line,
    LineConfig,
    LineCounters,
    LineNotFound,
    LineRecord,
    LineRefusal,
    StaleLineConfig,
)
from fundrouter.domain.orders import (
    Customer,
    Decision,
    HistoryEntry,
    Holding,
    Order,
    OrderStatus,
    UnreadableOrder,
)
from fundrouter.domain.paging import Page
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.persistence.orders import due_at, order_ids, order_pk
from fundrouter.service.auditing import AuditState, Cut
from fundrouter.service.matching import MatchReport
from fundrouter.service.ports import CatalogMarker, ClaimAttempt, ClaimResult, Commit
from fundrouter.service.reconciling import Reconciler


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


# ------------------------------------------------------------ the matcher's ports

type Action = Callable[[], object]


@dataclass(frozen=True)
class ClaimCall:
    order_id: str
    line_id: str
    config_version: int
    hold_expires_at: datetime
    decision: Decision


class FakeMatchStore:
    """The MatchStore port in memory. A claim checks, like the transaction's
    conditions: the order is still RECEIVED at the version read (else ORDER_MOVED),
    the line still exists at the configuration version ranked (else a refusal), and
    the pure Line.claim accepts the amount on the line's *current* counters."""

    def __init__(self, now: datetime, today: str, configure: Callable[..., LineConfig]) -> None:
        """`now` and `today` are when other writers' moves happen; `configure` makes
        the configuration of each line put (tests/support/factories.line_config)."""
        self.now, self.today = now, today
        self._configure = configure
        self.records: dict[str, LineRecord] = {}
        self.orders: dict[tuple[str, str], Order] = {}
        self.claims: list[ClaimCall] = []
        self.unmatched: list[tuple[str, Decision]] = []
        # Capacity claimed by orders this store does not hold (other writers).
        self.taken_elsewhere: Counter[str] = Counter()
        self._before_claim: defaultdict[str, list[Action]] = defaultdict(list)
        self._before_unmatched: list[Action] = []

    # ------------------------------------------------------------ set-up

    def put_line(
        self,
        line_id: str,
        *,
        reserved: int = 0,
        drawn: int = 0,
        daily_used: dict[str, int] | None = None,
        matched_total: int = 0,
        **config: Any,
    ) -> LineRecord:
        counters = LineCounters(reserved, drawn, daily_used or {})
        record = LineRecord(
            Line(line_id, self._configure(**config), counters),
            config_version=1,
            created_at="2026-11-01T00:00:00.000Z",
            updated_at="2026-11-01T00:00:00.000Z",
            matched_total=matched_total,
        )
        self.records[line_id] = record
        return record

    def add_order(self, order: Order) -> Order:
        self.orders[(order.tenant_id, order.order_id)] = order
        return order

    def stored(self, order: Order) -> Order:
        return self.orders[(order.tenant_id, order.order_id)]

    def line(self, line_id: str) -> Line:
        return self.records[line_id].line

    # ------------------------------------------------- other writers' moves

    def take(self, line_id: str, amount: int) -> bool:
        """Another order's claim lands on the line; False if the line refused it."""
        record = self.records[line_id]
        try:
            line = record.line.claim(amount, record.line.config.currency, self.now)
        except LineRefusal:
            return False
        self.records[line_id] = replace(
            record, line=line, matched_total=record.matched_total + amount
        )
        self.taken_elsewhere[line_id] += amount
        return True

    def release(self, line_id: str, amount: int) -> None:
        """Another order on the line is cancelled: its capacity comes back."""
        record = self.records[line_id]
        self.records[line_id] = replace(record, line=record.line.release(amount, self.today))

    def reconfigure(self, line_id: str, **changes: Any) -> None:
        """An operator puts a new configuration: the version moves on."""
        record = self.records[line_id]
        config = LineConfig.model_validate(record.line.config.model_dump() | changes)
        self.records[line_id] = replace(
            record,
            line=replace(record.line, config=config),
            config_version=record.config_version + 1,
        )

    def remove(self, line_id: str) -> None:
        del self.records[line_id]

    def move_order(self, order: Order, status: OrderStatus) -> None:
        """Another delivery or an event moved the order on."""
        stored = self.stored(order)
        self.add_order(_moved(stored, status, {}, None, self.now))

    def before_claim(self, line_id: str, action: Action) -> None:
        """Run `action` once, just before the next claim on `line_id` is checked."""
        self._before_claim[line_id].append(action)

    def before_mark_unmatched(self, action: Action) -> None:
        self._before_unmatched.append(action)

    def forget_interjections(self) -> None:
        self._before_claim.clear()
        self._before_unmatched.clear()

    # ------------------------------------------------------- the port

    def claim(
        self,
        order: Order,
        record: LineRecord,
        now: datetime,
        hold_expires_at: datetime,
        decision: Decision,
    ) -> ClaimAttempt:
        line_id = record.line.line_id
        self.claims.append(
            ClaimCall(order.order_id, line_id, record.config_version, hold_expires_at, decision)
        )
        queued = self._before_claim[line_id]
        if queued:
            queued.pop(0)()
        if not self._still_waiting(order):
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        current = self.records.get(line_id)
        if current is None:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, LineNotFound(line_id))
        if current.config_version != record.config_version:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, StaleLineConfig(line_id))
        try:
            line = current.line.claim(order.amount, order.currency, now)
        except LineRefusal as refusal:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, refusal)
        self.records[line_id] = replace(
            current, line=line, matched_total=current.matched_total + order.amount
        )
        fields = {
            "line_id": line_id,
            "funder_id": line.config.funder_id,
            "reserved": order.amount,
            "hold_expires_at": hold_expires_at,
            "claim_day": line.day_of(now),
            "decision": decision,
        }
        self.add_order(_moved(self.stored(order), OrderStatus.MATCHED, fields, line_id, now))
        return ClaimAttempt(ClaimResult.CLAIMED)

    def mark_unmatched(self, order: Order, now: datetime, decision: Decision) -> bool:
        self.unmatched.append((order.order_id, decision))
        if self._before_unmatched:
            self._before_unmatched.pop(0)()
        if not self._still_waiting(order):
            return False
        stored = self.stored(order)
        self.add_order(_moved(stored, OrderStatus.UNMATCHED, {"decision": decision}, None, now))
        return True

    def _still_waiting(self, order: Order) -> bool:
        stored = self.orders.get((order.tenant_id, order.order_id))
        return (
            stored is not None
            and stored.status is OrderStatus.RECEIVED
            and stored.version == order.version
        )


def _moved(
    order: Order,
    status: OrderStatus,
    fields: dict[str, Any],
    line_id: str | None,
    now: datetime,
) -> Order:
    return order.model_copy(
        update=fields
        | {
            "status": status,
            "version": order.version + 1,
            "updated_at": now,
            "history": [*order.history, HistoryEntry(status=status, at=now, line_id=line_id)],
        }
    )


class FakeLineSource:
    """The lines table as LineCatalog reads it, straight from the store's records."""

    def __init__(self, store: FakeMatchStore) -> None:
        self._store = store
        self.policies: dict[str, RoutingPolicy] = {}
        self.calls: list[tuple[str, ...]] = []
        self.version = 0
        self.recent: dict[str, int] = {}
        self.lagging: set[str] = set()

    def list_lines(self) -> list[LineRecord]:
        """As the lines index shows them: a line in `lagging` has not reached it yet."""
        self.calls.append(("list_lines",))
        return [r for r in self._store.records.values() if r.line.line_id not in self.lagging]

    def get_routing(self, tenant_id: str) -> RoutingPolicy | None:
        self.calls.append(("get_routing", tenant_id))
        return self.policies.get(tenant_id)

    def get(self, line_id: str, days: list[str]) -> LineRecord | None:
        self.calls.append(("get", line_id, *days))
        return self._store.records.get(line_id)

    def catalog_marker(self) -> CatalogMarker:
        self.calls.append(("catalog_marker",))
        return CatalogMarker(self.version, dict(self.recent))

    def change(self, record: LineRecord | None = None) -> None:
        """What every line or policy write does after writing."""
        self.version += 1
        if record is not None:
            self.recent[record.line.line_id] = record.config_version

    def count(self, name: str) -> int:
        return sum(1 for call in self.calls if call[0] == name)


# ------------------------------------------------------------ the clock

START: Final = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class Clock:
    """Each reading `tick` later than the last (the first `tick` after `now`); with
    no tick every reading is `now`. `advance` jumps ahead."""

    def __init__(self, now: datetime = START, tick: timedelta = timedelta(0)) -> None:
        self.now = now
        self.tick = tick

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ticking(tick: timedelta = timedelta(milliseconds=1)) -> Clock:
    """The first reading at START, each next one `tick` later: listings in a fixed order."""
    return Clock(START - tick, tick)


class Timer:
    """A monotonic timer (seconds, as time.monotonic) the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------ open loans at scale

LINES = 4
HOLD = 1_000


def book_with(loans: int, holds: int = 0) -> InMemoryBook:
    """`loans` DISBURSED and `holds` MATCHED orders spread over LINES lines; the
    holds expired a minute ago."""
    book = InMemoryBook()
    # Spelled out, not factories.line_config: this module imports nothing from tests/.
    config = LineConfig(
        funder_id="bank",
        name="line",
        currency="CNY",
        limit=10**15,
        min_amount=1,
        max_amount=10**9,
        apr_bps=1000,
        priority=1,
        weight=50,
        hold_seconds=900,
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
