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
    from fundrouter.domain.tenants import Tenant
    from fundrouter.domain.webhooks import Attempt, Delivery, DeliveryState, Endpoint

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


# ------------------------------------------------------------ webhooks


class WebhookStore(Protocol):
    def add_endpoint(self, endpoint: Endpoint, limit: int) -> bool:
        """Store a new endpoint unless its tenant has `limit` already (False)."""
        ...

    def endpoints(self, tenant_id: str) -> list[Endpoint]: ...

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None: ...

    def replace_endpoint(self, endpoint: Endpoint) -> bool:
        """Write it over the stored one of version - 1; False when that moved."""
        ...

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None: ...

    def add_delivery(self, delivery: Delivery) -> bool:
        """Store a new delivery; False (writing nothing) when it exists already."""
        ...

    def delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None: ...

    def deliveries(
        self, endpoint_id: str, state: DeliveryState | None, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Newest first. Raises InvalidCursor for a cursor it did not issue."""
        ...

    def claim(self, delivery: Delivery, now: datetime, until: datetime) -> bool:
        """Lease a due PENDING delivery at its attempt count for one attempt; False
        when another attempt holds it or it moved. Due again at `until` if the
        attempt never reports."""
        ...

    def record(self, delivery: Delivery, previous: Delivery) -> bool:
        """Write the delivery after the attempt the lease of `previous` allowed."""
        ...

    def resend(self, delivery: Delivery, now: datetime) -> bool:
        """Write the re-sent delivery unless an attempt holds it (False)."""
        ...

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(endpointId, deliveryId) of PENDING deliveries due by `now`, from an index
        that holds only those: the cost follows what is due, not what is stored."""
        ...


class AttemptQueue(Protocol):
    def send(self, keys: Sequence[tuple[str, str]], delay_seconds: int = 0) -> None:
        """Ask for an attempt of each (endpointId, deliveryId) after the delay."""
        ...


class WebhookSender(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        """POST once with a short timeout; the attempt as it went (never raises)."""
        ...


# ------------------------------------------------------------ tenants


class Slot(StrEnum):
    """What taking one order's place in the tenant's minute found."""

    TAKEN = "TAKEN"
    FULL = "FULL"
    SUSPENDED = "SUSPENDED"
    NO_QUOTA = "NO_QUOTA"


class TenantStore(Protocol):
    def create(self, tenant: Tenant) -> None:
        """The tenant and the alias of its client, in one transaction."""
        ...

    def get(self, tenant_id: str) -> Tenant | None:
        """Read consistently: a suspension is seen by the next request."""
        ...

    def tenant_of(self, client_id: str) -> str | None:
        """The tenant a client was created for; None for a client of no tenant."""
        ...

    def list(self, limit: int, cursor: str | None) -> Page[Tenant]: ...

    def replace(self, tenant: Tenant, expected_version: int, new_client: str | None = None) -> bool:
        """Write the tenant if its stored version is `expected_version` (and the new
        client's alias with it); False when it moved. Leaves the quota counter alone."""
        ...

    def take_order_slot(self, tenant_id: str, minute: int) -> Slot: ...


class ClientDirectory(Protocol):
    """The user pool's app clients."""

    def create(self, name: str, scopes: Sequence[str]) -> tuple[str, str]:
        """A client-credentials client with these scopes: its id and its secret."""
        ...

    def delete(self, client_id: str) -> None:
        """Delete the client; one already gone is not an error."""
        ...
