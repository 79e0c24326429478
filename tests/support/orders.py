"""Orders moved through the product's own write paths (intake's add, the matcher's
claim, the lifecycle's commit), for tests that need capacity held on a line."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from fundrouter.domain.lifecycle import EventType, OrderEvent, Transition, apply_event, over_limit
from fundrouter.domain.lines import LineRecord
from fundrouter.domain.orders import HOLDING_STATUSES, Decision, Order
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.ports import ClaimAttempt, ClaimResult, Commit, Room

from tests.support.factories import order_request

TENANT = "demotenantclient0000000001"
DECISION = Decision(strategy="PRIORITY", candidates=[])


def received(order_id: str, amount: int, now: datetime, currency: str = "CNY") -> Order:
    request = order_request(orderId=order_id, amount=amount, currency=currency, metadata={})
    return Order.received(TENANT, request, now)


class Paths:
    """Intake, the matcher's store and the lifecycle's store over one pair of tables."""

    def __init__(self, client: Any, orders_table: str, lines: DynamoLineRepository) -> None:
        self.orders = DynamoOrderRepository(client, orders_table)
        self.store = DynamoMatchStore(client, orders_table, lines)
        self.events = DynamoOrderEvents(client, orders_table, lines)
        self._sequence = 0

    def claim(
        self, record: LineRecord, amount: int, now: datetime
    ) -> tuple[ClaimAttempt, Order | None]:
        """A new order, stored RECEIVED and claimed on `record`'s line as the matcher
        claims it; the order as stored afterwards."""
        order = self.add(record, amount, now)
        hold = now + timedelta(seconds=record.line.config.hold_seconds)
        attempt = self.store.claim(order, record, now, hold, DECISION)
        return attempt, self.orders.get(order.tenant_id, order.order_id)

    def add(self, record: LineRecord, amount: int, now: datetime) -> Order:
        """A new order in the line's currency, stored RECEIVED as intake stores it."""
        self._sequence += 1
        order = received(f"order-{self._sequence}", amount, now, record.line.config.currency)
        assert self.orders.add(order) is None
        return order

    def claim_together(
        self, record: LineRecord, amounts: list[int], now: datetime
    ) -> tuple[set[int] | Room | None, list[Order]]:
        """New orders claimed in one transaction, as the matcher's group commit does;
        the orders as stored afterwards."""
        orders = [self.add(record, amount, now) for amount in amounts]
        hold = now + timedelta(seconds=record.line.config.hold_seconds)
        moved = self.store.claim_together([(o, DECISION) for o in orders], record, now, hold)
        stored = [self.orders.get(o.tenant_id, o.order_id) for o in orders]
        return moved, [order for order in stored if order is not None]

    def claimed(self, record: LineRecord, amount: int, now: datetime) -> Order:
        attempt, order = self.claim(record, amount, now)
        assert attempt.result is ClaimResult.CLAIMED, attempt
        assert order is not None
        return order

    def commit(
        self, order: Order, transition: Transition, event: OrderEvent | None, now: datetime
    ) -> Transition:
        """Commit as OrderEventService does (a late disbursement the line has no room
        for is committed over the limit); the transition that committed."""
        outcome = self.events.commit(order, transition, event, now)
        if outcome is Commit.LINE_FULL:
            transition = over_limit(transition)
            outcome = self.events.commit(order, transition, event, now)
        assert outcome is Commit.COMMITTED, outcome
        return transition

    def event(
        self, order: Order, kind: EventType, now: datetime, amount: int | None = None
    ) -> Order:
        self._sequence += 1
        event = OrderEvent(event_id=f"event-{self._sequence}", type=kind, amount=amount)
        return self.commit(order, apply_event(order, event, now), event, now).order


def counts_of(orders: Iterable[Order], line_id: str) -> dict[str, int]:
    """The line resource's `orders`: the orders holding capacity on it, by status."""
    counts = {status.value: 0 for status in HOLDING_STATUSES}
    for order in orders:
        if order.status in HOLDING_STATUSES and order.line_id == line_id:
            counts[order.status.value] += 1
    return counts
