"""The storage the services need, as small interfaces: DynamoDB in Lambda, fakes in
unit tests. Every port of every service is here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

# Annotations only, so a function loads no more of the domain than it uses itself
# (the tracker's ports here would otherwise import the lines, routing and lifecycle).
if TYPE_CHECKING:
    from fundrouter.domain.errors import DomainError
    from fundrouter.domain.lifecycle import OrderEvent, Transition
    from fundrouter.domain.lines import LineConfig, LineRecord, Move
    from fundrouter.domain.orders import Decision, HistoryEntry, Order, OrderStatus, UnreadableOrder
    from fundrouter.domain.paging import Page
    from fundrouter.domain.routing import RoutingPolicy

    # The services' own types: they import their ports from here.
    from fundrouter.service.auditing import AuditState, Cut
    from fundrouter.service.matching import MatchReport
    from fundrouter.service.tracking import OrderStatusChanged, Unpublished


class OrderRepository(Protocol):
    def add(self, order: Order) -> Order | None:
        """Store a new order in one write. Returns None when stored, or the order
        already stored under the same (tenant, orderId), writing nothing."""
        ...

    def get(self, tenant_id: str, order_id: str) -> Order | None: ...

    def list_for_tenant(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        """Newest first. Raises InvalidCursor for a cursor it did not issue for this
        tenant and filter."""
        ...


class OrderHistory(Protocol):
    def page(
        self, tenant_id: str, order_id: str, limit: int, cursor: str | None
    ) -> Page[HistoryEntry] | None:
        """Every entry of the order's history, oldest first; None if there is no such
        order. Raises InvalidCursor for a cursor it did not issue for this order."""
        ...


class LineRepository(Protocol):
    def put_config(
        self, line_id: str, config: LineConfig, now: datetime, expected_version: int | None = None
    ) -> LineRecord: ...

    def get(self, line_id: str, days: Sequence[str] = ()) -> LineRecord | None: ...

    def list_lines(self) -> list[LineRecord]: ...

    def usage_on(
        self, day_by_line: dict[str, str], shards: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Each line's usage on its day, over `shards` shard items where named."""
        ...

    def put_routing(self, tenant_id: str, policy: RoutingPolicy, now: datetime) -> None: ...

    def get_routing(self, tenant_id: str) -> RoutingPolicy | None: ...


class ClaimResult(StrEnum):
    CLAIMED = "CLAIMED"
    LINE_REFUSED = "LINE_REFUSED"
    ORDER_MOVED = "ORDER_MOVED"


@dataclass(frozen=True)
class ClaimAttempt:
    result: ClaimResult
    refusal: DomainError | None = None


class LineSource(Protocol):
    def list_lines(self) -> list[LineRecord]: ...

    def get_routing(self, tenant_id: str) -> RoutingPolicy | None: ...

    def get(self, line_id: str, days: list[str]) -> LineRecord | None: ...

    def catalog_marker(self) -> CatalogMarker:
        """The change marker every line configuration or routing write bumps."""
        ...


@dataclass(frozen=True)
class CatalogMarker:
    """How many line and policy changes there have been, and the configuration
    version of the lines changed most recently (bounded), so a reader of the lagging
    lines index can tell which lines to read from the table itself."""

    version: int
    recent: dict[str, int] = field(default_factory=dict)


# Orders claimed together on one line, each with its decision.
type Grouped = Sequence[tuple[Order, Decision]]


@dataclass(frozen=True)
class Room:
    """A group's claim refused for room: the line takes only the first `orders` of
    the group (claimed one after another, each would fit; the next would not)."""

    orders: int


class MatchStore(Protocol):
    def claim(
        self, order: Order, record: LineRecord, now: datetime, expires: datetime, decision: Decision
    ) -> ClaimAttempt: ...

    def claim_together(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> set[int] | Room | None: ...

    def mark_unmatched(self, order: Order, now: datetime, decision: Decision) -> bool: ...


@dataclass(frozen=True)
class StoredEvent:
    """An event already applied: its content, to tell a repeat from a reuse of its id."""

    content_hash: str


class Commit(StrEnum):
    COMMITTED = "COMMITTED"
    ORDER_MOVED = "ORDER_MOVED"
    EVENT_EXISTS = "EVENT_EXISTS"
    # A late disbursement: the line has no room for it (nothing written), or its room
    # changed between the read and the write (decide again).
    LINE_FULL = "LINE_FULL"
    LINE_MOVED = "LINE_MOVED"


class OrderEventStore(Protocol):
    def load(
        self, tenant_id: str, order_id: str, event_id: str
    ) -> tuple[Order | None, StoredEvent | None]: ...

    def commit(
        self, before: Order, transition: Transition, event: OrderEvent | None, now: datetime
    ) -> Commit: ...


# ------------------------------------------------------------ the reconciler


class DueOrders(Protocol):
    def due(
        self, now: datetime, limit: int, unlisted: Callable[[str, Exception], None]
    ) -> list[Order | UnreadableOrder]: ...


class HoldExpiries(Protocol):
    def expire_together(
        self, expiring: Sequence[tuple[Order, Transition]]
    ) -> list[Commit | Exception]: ...


class LineListing(Protocol):
    def list_lines(self) -> list[LineRecord]: ...

    def get(self, line_id: str, days: Sequence[str] = ()) -> LineRecord | None: ...

    def move_room(self, record: LineRecord, move: Move, days: Sequence[str]) -> bool:
        """One conditional move of room between two shards; False when refused."""
        ...

    def reshare(self, record: LineRecord, now: datetime) -> bool:
        """A closed (short) sharded line reopened, its shares set anew."""
        ...


class Matcher(Protocol):
    def batch(self) -> AbstractContextManager[None]: ...

    def match(self, order: Order) -> MatchReport: ...


# ------------------------------------------------------------ status events


class StatusEventPublisher(Protocol):
    def publish(self, changes: Sequence[OrderStatusChanged]) -> dict[int, str]:
        """Publish every change; return the positions of those not published, each
        with the reason. Never raises for a refused entry: it is reported."""
        ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[Unpublished]) -> set[int]:
        """Store every letter durably; return the positions of those not stored."""
        ...


class DeadLetterQueue(Protocol):
    def receive(self, limit: int) -> list[tuple[str, Unpublished]]:
        """Up to ``limit`` letters (at most 10), each with the handle that deletes it;
        received letters stay hidden from other readers for a while."""
        ...

    def delete(self, handles: Sequence[str]) -> None: ...


class OrderReader(Protocol):
    def get(self, tenant_id: str, order_id: str) -> Order | None: ...


# ------------------------------------------------------------ the audit


class AuditStore(Protocol):
    def holding_keys(
        self, line_id: str, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, str]], str | None]: ...

    def cut(self, line_id: str, keys: list[tuple[str, str]]) -> Cut | None: ...

    def audit_states(self, line_ids: list[str]) -> dict[str, AuditState]: ...

    def save_audit(self, state: AuditState) -> None: ...
