"""Tracking: which changes on the Orders stream are status changes, the
``OrderStatusChanged`` event each one becomes, and the figures they add up to.

Pure: the stream record is decoded by the handler, the event is published through
the ``StatusEventPublisher`` port (EventBridge in Lambda, a fake in unit tests).

Delivery is at least once. A redelivered stream record publishes its event again,
unchanged: the order's ``version`` is part of the event, and (tenantId, orderId,
version) names one status change, so subscribers drop what they have already seen
and ignore an event older than the last one they applied.
"""

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

from pydantic import Field

from fundrouter.domain.clock import Timestamp
from fundrouter.domain.orders import CamelModel, Order, OrderStatus

# The sort key of the order item itself. Other items of an order's partition (the
# ids of events applied to it, "EVENT#...") share the stream and are not orders.
ORDER_ITEM_SORT_KEY: Final = "ORDER"
EVENT_SOURCE: Final = "fundrouter"
EVENT_DETAIL_TYPE: Final = "OrderStatusChanged"


class Skip(StrEnum):
    """Why a stream record publishes nothing. None of these is a failure."""

    NOT_AN_ORDER = "NOT_AN_ORDER"
    REMOVED = "REMOVED"
    STATUS_UNCHANGED = "STATUS_UNCHANGED"


class OrderStatusChanged(CamelModel):
    """The ``detail`` of an OrderStatusChanged event. Money is in minor units of
    ``currency``; ``from`` is null for a new order; ``at`` is when the order
    changed (its ``updatedAt``), ``version`` the order's version after the change."""

    tenant_id: str
    order_id: str
    from_status: OrderStatus | None = Field(alias="from")
    to_status: OrderStatus = Field(alias="to")
    line_id: str | None
    funder_id: str | None
    amount: int
    currency: str
    reserved: int
    outstanding: int
    at: Timestamp
    version: int

    def detail(self) -> dict[str, Any]:
        """The JSON object published as the event's detail (camelCase keys)."""
        return self.model_dump(mode="json", by_alias=True)

    def dedup_key(self) -> tuple[str, str, int]:
        """What names this change across redeliveries."""
        return (self.tenant_id, self.order_id, self.version)


def skip_before_decoding(event_name: str, sort_key: str) -> Skip | None:
    """Records that are no status change whatever their images hold: another kind
    of item in the table, or an item removed (orders are never deleted by the
    service; a removal is an operator's clean-up, not a status)."""
    if sort_key != ORDER_ITEM_SORT_KEY:
        return Skip.NOT_AN_ORDER
    if event_name == "REMOVE":
        return Skip.REMOVED
    return None


def status_change(old: Order | None, new: Order) -> OrderStatusChanged | Skip:
    """The event for an order written as ``new`` over ``old`` (None: a new order),
    or STATUS_UNCHANGED when the write kept the status (a repayment in part, a
    decision recorded, a field touched)."""
    if old is not None and old.status == new.status:
        return Skip.STATUS_UNCHANGED
    return OrderStatusChanged(
        tenant_id=new.tenant_id,
        order_id=new.order_id,
        from_status=None if old is None else old.status,
        to_status=new.status,
        line_id=new.line_id,
        funder_id=new.funder_id,
        amount=new.amount,
        currency=new.currency,
        reserved=new.reserved,
        outstanding=new.outstanding,
        at=new.updated_at,
        version=new.version,
    )


class StatusEventPublisher(Protocol):
    def publish(self, changes: Sequence[OrderStatusChanged]) -> dict[int, str]:
        """Publish every change; return the positions of those not published, each
        with the reason. Never raises for a refused entry: it is reported."""
        ...


def publish_changes[K: Hashable](
    publisher: StatusEventPublisher, changes: Mapping[K, OrderStatusChanged]
) -> dict[K, str]:
    """Publish the changes of one batch together; the keys (stream records) whose
    change was not published, with the reason, so exactly those are retried."""
    keys = list(changes)
    refused = publisher.publish([changes[key] for key in keys])
    return {keys[position]: reason for position, reason in refused.items()}


@dataclass
class LineFigures:
    orders: int = 0
    volume: int = 0


@dataclass
class TrackingFigures:
    """What one batch of published changes adds to the metrics. The unmatched rate
    is ``unmatched / (matched + unmatched)`` over any period."""

    by_status: Counter[OrderStatus] = field(default_factory=Counter)
    matched_by_line: dict[str, LineFigures] = field(default_factory=dict)
    matched: int = 0
    unmatched: int = 0


def figures(changes: Sequence[OrderStatusChanged]) -> TrackingFigures:
    summary = TrackingFigures()
    for change in changes:
        summary.by_status[change.to_status] += 1
        if change.to_status is OrderStatus.MATCHED:
            summary.matched += 1
            line = summary.matched_by_line.setdefault(change.line_id or "unknown", LineFigures())
            line.orders += 1
            line.volume += change.amount
        elif change.to_status is OrderStatus.UNMATCHED:
            summary.unmatched += 1
    return summary
