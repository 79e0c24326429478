"""Order events from business systems: approve, decline, cancel, disburse, repay."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from fundrouter.domain.errors import DomainError, FieldProblem, OrderNotFound
from fundrouter.domain.lifecycle import (
    LATE_DISBURSE_GRACE,
    OrderEvent,
    Transition,
    apply_event,
    over_limit,
)
from fundrouter.domain.orders import Order
from fundrouter.service.ports import Commit, OrderEventStore

ATTEMPTS: Final = 3


class EventConflict(DomainError):
    code = "event_conflict"

    def __init__(self, event_id: str) -> None:
        super().__init__(
            f"event {event_id} was already recorded with different content",
            (FieldProblem("eventId", "already used for a different event"),),
        )


class OrderBusy(DomainError):
    """The order kept changing under the event (a concurrent match or event)."""

    code = "order_busy"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is changing concurrently; retry the event")


@dataclass(frozen=True)
class Recorded:
    order: Order
    replayed: bool


class OrderEventService:
    def __init__(
        self,
        store: OrderEventStore,
        clock: Callable[[], datetime],
        late_grace: timedelta = LATE_DISBURSE_GRACE,
    ) -> None:
        self._store = store
        self._clock = clock
        self._late_grace = late_grace

    def record(self, tenant_id: str, order_id: str, event: OrderEvent) -> Recorded:
        """Apply `event` once. The same eventId again changes nothing and answers the
        order as it stands (its version says whether it moved since)."""
        for _ in range(ATTEMPTS):
            order, stored = self._store.load(tenant_id, order_id, event.event_id)
            if order is None:  # an event is recorded only with its order: never alone
                raise OrderNotFound(order_id)
            if stored is not None:
                if stored.content_hash != event.content_hash():
                    raise EventConflict(event.event_id)
                return Recorded(order, replayed=True)
            now = self._clock()
            transition = apply_event(order, event, now, self._late_grace)
            outcome, after = self._commit(order, transition, event, now)
            if outcome is Commit.COMMITTED:
                return Recorded(after, replayed=False)
            # EVENT_EXISTS: read back what the concurrent delivery recorded.
            # ORDER_MOVED: decide again on the order as it is now.
        raise OrderBusy(order_id)

    def _commit(
        self, order: Order, transition: Transition, event: OrderEvent, now: datetime
    ) -> tuple[Commit, Order]:
        outcome = self._store.commit(order, transition, event, now)
        if outcome is Commit.LINE_FULL:
            # Lent after the hold was given back, with no room left on the line: the
            # money is out, so it is recorded all the same, flagged over the limit.
            transition = over_limit(transition)
            outcome = self._store.commit(order, transition, event, now)
        return outcome, transition.order
