"""Tracking: which changes on the Orders stream are status changes, the
``OrderStatusChanged`` event each one becomes, and the figures they add up to.

Pure: the stream record is decoded by the handler, the event is published through
the ``StatusEventPublisher`` port (EventBridge in Lambda, a fake in unit tests).

Delivery is at least once. A redelivered stream record publishes its event again,
unchanged: the order's ``version`` is part of the event, and (tenantId, orderId,
version) names one status change, so subscribers drop what they have already seen
and ignore an event older than the last one they applied.

An event the bus would not take (after the publisher's retries) is not left to the
stream, whose records expire in 24 hours: its identity goes to a dead-letter queue
(``Unpublished``), and ``StatusEventRepublisher`` later publishes the order's status
as the table holds it then, at its current version, which subscribers order by.
"""

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import Field

from fundrouter.domain.clock import Timestamp
from fundrouter.domain.orders import CamelModel, Order, OrderStatus
from fundrouter.service.ports import (
    DeadLetterQueue,
    OrderReader,
    StatusEventPublisher,
)

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


class Unpublished(CamelModel):
    """A status event that was not published, as dead-lettered: enough to publish the
    order's status again from the table. ``version`` is the lost event's (None when
    the stream record did not decode); ``reason`` names the error, never a value."""

    tenant_id: str
    order_id: str
    version: int | None = None
    reason: str

    def order_key(self) -> tuple[str, str]:
        return (self.tenant_id, self.order_id)


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
    return _event(new, None if old is None else old.status)


def current_status_event(order: Order) -> OrderStatusChanged:
    """The event for the order's status as it stands, for re-publishing: ``from`` is
    the status it had before (None if it never had another)."""
    return _event(order, order.previous_status)


# What a status event carries of its order as it is, under the same names.
_SHOWN: Final[set[str]] = set(
    "tenant_id order_id line_id funder_id amount currency reserved outstanding version".split()
)


def _event(order: Order, from_status: OrderStatus | None) -> OrderStatusChanged:
    return OrderStatusChanged(
        **order.model_dump(include=_SHOWN),
        from_status=from_status,
        to_status=order.status,
        at=order.updated_at,
    )


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


@dataclass
class RepublishOutcome:
    """What one republish run did with the letters it read: ``failed`` letters stay
    on the queue and come back; ``missing`` names orders the table does not hold."""

    republished: list[OrderStatusChanged] = field(default_factory=list)
    missing: list[Unpublished] = field(default_factory=list)
    failed: list[tuple[Unpublished, str]] = field(default_factory=list)
    letters: int = 0


class StatusEventRepublisher:
    """Publishes again the status of every order named on the dead-letter queue, read
    from the table now; a letter is deleted once its order's event is on the bus."""

    def __init__(
        self, orders: OrderReader, publisher: StatusEventPublisher, letters: DeadLetterQueue
    ) -> None:
        self._orders = orders
        self._publisher = publisher
        self._letters = letters

    def republish(self, limit: int) -> RepublishOutcome:
        report = RepublishOutcome()
        while report.letters < limit:
            received = self._letters.receive(min(10, limit - report.letters))
            if not received:
                return report
            report.letters += len(received)
            self._republish(received, report)
        return report

    def _republish(self, received: list[tuple[str, Unpublished]], report: RepublishOutcome) -> None:
        # Several letters for one order publish its status once.
        handles: dict[tuple[str, str], list[str]] = {}
        letters: dict[tuple[str, str], Unpublished] = {}
        for handle, letter in received:
            handles.setdefault(letter.order_key(), []).append(handle)
            letters.setdefault(letter.order_key(), letter)
        events: dict[tuple[str, str], OrderStatusChanged] = {}
        for key, letter in letters.items():
            order = self._orders.get(*key)
            if order is None:
                report.missing.append(letter)
            else:
                events[key] = current_status_event(order)
        refused = publish_changes(self._publisher, events)
        report.republished += [event for key, event in events.items() if key not in refused]
        report.failed += [(letters[key], reason) for key, reason in refused.items()]
        self._letters.delete([h for key in letters if key not in refused for h in handles[key]])
