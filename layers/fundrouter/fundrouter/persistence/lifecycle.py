"""Order events: the order's transition, its line's capacity effect and the record of
the event id commit in one ``TransactWriteItems``.

The event record (``sk = EVENT#{eventId}`` in the order's partition) holds the
event's type and content hash and the order version it produced, not a copy of the
order (whose size would make the records grow with the order's age): a repeated
event changes nothing and is answered with the order as it stands. Its
``attribute_not_exists`` condition makes two concurrent deliveries of one event
commit once. History entries the write moves off the order item are put in the same
transaction (fundrouter.persistence.history). Contention and throttling are retried by
fundrouter.persistence.retries (Contended, Unavailable after that).
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.lifecycle import CapacityEffect, CapacityMove, OrderEvent, Transition
from fundrouter.domain.lines import holding_moves
from fundrouter.domain.orders import Order
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.history import spill_items
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_item, order_pk
from fundrouter.persistence.retries import (
    CONDITION_FAILED,
    DEFAULT_BACKOFF,
    Backoff,
    transact,
    transact_get,
)
from fundrouter.service.ports import Commit, StoredEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_PREFIX: Final = "EVENT#"


class CapacityDisagrees(Exception):
    """The line refused an effect its order says it holds: the counters and the
    orders disagree. Nothing was written; the reconciler's audit reports it."""


class DynamoOrderEvents:
    def __init__(
        self,
        client: "DynamoDBClient",
        orders_table: str,
        lines: DynamoLineRepository,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self._client = client
        self._table = orders_table
        self._lines = lines
        self._backoff = backoff

    def load(
        self, tenant_id: str, order_id: str, event_id: str
    ) -> tuple[Order | None, StoredEvent | None]:
        """The order and, if already recorded, the event, in one transactional read: a
        concurrent delivery's transaction is seen whole or not at all, never as the
        order moved without its event record (BatchGetItem could see that)."""
        pk = {"S": order_pk(tenant_id, order_id)}
        keys = [{"pk": pk, "sk": {"S": ORDER_SK}}, {"pk": pk, "sk": {"S": EVENT_PREFIX + event_id}}]
        gets = [{"Get": {"TableName": self._table, "Key": key}} for key in keys]
        order_item, event_item = transact_get(self._client, gets, self._backoff)
        order = order_from_item(order_item) if order_item else None
        stored = StoredEvent(str(from_item(event_item)["contentHash"])) if event_item else None
        return order, stored

    def commit(
        self,
        before: Order,
        transition: Transition,
        event: OrderEvent | None,
        now: datetime,
    ) -> Commit:
        """Without an event (the reconciler's expiry) no event record is written. A
        late disbursement the line has no room for writes nothing: LINE_FULL."""
        after = transition.order
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": order_item(after),
                    "ConditionExpression": "version = :version AND #status = :status",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":version": {"N": str(before.version)},
                        ":status": {"S": before.status.value},
                    },
                }
            }
        ]
        if event is not None:
            items.append(self._event_record(after, event, now))
        capacity = self._capacity_items(transition.effect)
        if capacity is None:
            return Commit.LINE_FULL
        # The line's counts of its orders by status move with the order, APPROVED too;
        # the history spill goes last, so the reasons of the others keep their places.
        items += self._lines.with_counts(capacity, holding_moves(before, after))
        items += spill_items(self._table, before, after)
        reasons = transact(self._client, items, self._backoff)
        if not reasons:
            return Commit.COMMITTED
        codes = [r.get("Code") for r in reasons]
        if event is not None and codes[1] == CONDITION_FAILED:
            return Commit.EVENT_EXISTS
        if codes[0] == CONDITION_FAILED:
            return Commit.ORDER_MOVED
        effect = transition.effect
        if effect is not None and effect.move is CapacityMove.LATE_DRAW:
            return Commit.LINE_MOVED  # the room read is gone: decide again on a new read
        raise CapacityDisagrees(
            f"line {effect and effect.line_id} refused {effect} for order {before.order_id}"
        )

    def _event_record(self, after: Order, event: OrderEvent, now: datetime) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_item(
                    {
                        "pk": order_pk(after.tenant_id, after.order_id),
                        "sk": EVENT_PREFIX + event.event_id,
                        "eventId": event.event_id,
                        "type": event.type.value,
                        "contentHash": event.content_hash(),
                        "version": after.version,
                        "recordedAt": format_timestamp(now),
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _capacity_items(self, effect: CapacityEffect | None) -> list[dict[str, Any]] | None:
        """The line's writes for `effect`; None when a late draw finds no room."""
        if effect is None:
            return []
        match effect.move:
            case CapacityMove.RELEASE:
                if effect.claim_day is None:
                    raise CapacityDisagrees(f"reservation on {effect.line_id} has no claim day")
                return self._lines.release_items(effect.line_id, effect.amount, effect.claim_day)
            case CapacityMove.DRAW:
                return self._lines.draw_items(
                    effect.line_id, effect.amount, effect.drawn, effect.claim_day
                )
            case CapacityMove.LATE_DRAW:
                return self._late_draw_items(effect)
            case CapacityMove.OVER_LIMIT_DRAW:
                return self._lines.late_draw_items(
                    effect.line_id, effect.amount, effect.claim_day, None
                )
            case CapacityMove.RESTORE:
                return self._lines.restore_items(effect.line_id, effect.amount)

    def _late_draw_items(self, effect: CapacityEffect) -> list[dict[str, Any]] | None:
        """Conditioned on the room the line has as read now; None when it has none."""
        record = self._lines.get(effect.line_id)
        if record is None:
            raise CapacityDisagrees(f"order holds line {effect.line_id}, which is gone")
        if not record.line.has_room(effect.amount):
            return None
        return self._lines.late_draw_items(effect.line_id, effect.amount, effect.claim_day, record)
