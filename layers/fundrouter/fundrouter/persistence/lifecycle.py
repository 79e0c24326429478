"""Order events: the order's transition, its line's capacity effect and the record of
the event id commit in one ``TransactWriteItems``.

The event record (``sk = EVENT#{eventId}`` in the order's partition) holds the
result that was returned, so a repeated event returns the same answer and changes
nothing; its ``attribute_not_exists`` condition makes two concurrent deliveries of
one event commit once.
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.lifecycle import CapacityEffect, CapacityMove, OrderEvent, Transition
from fundrouter.domain.orders import Order
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_item, order_pk
from fundrouter.service.ports import Commit, StoredEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_PREFIX: Final = "EVENT#"


class CapacityDisagrees(Exception):
    """The line refused an effect its order says it holds: the counters and the
    orders disagree. Nothing was written; the reconciler's audit reports it."""


class DynamoOrderEvents:
    def __init__(
        self, client: "DynamoDBClient", orders_table: str, lines: DynamoLineRepository
    ) -> None:
        self._client = client
        self._table = orders_table
        self._lines = lines

    def load(
        self, tenant_id: str, order_id: str, event_id: str
    ) -> tuple[Order | None, StoredEvent | None]:
        """The order and, if already recorded, the event: one consistent read."""
        pk = {"S": order_pk(tenant_id, order_id)}
        response = self._client.batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [
                        {"pk": pk, "sk": {"S": ORDER_SK}},
                        {"pk": pk, "sk": {"S": EVENT_PREFIX + event_id}},
                    ],
                    "ConsistentRead": True,
                }
            }
        )
        order, stored = None, None
        for item in response["Responses"].get(self._table, []):
            if item["sk"]["S"] == ORDER_SK:
                order = order_from_item(item)
            else:
                values = from_item(item)
                stored = StoredEvent(str(values["contentHash"]), dict(values["result"]))
        # Two small items never exceed BatchGetItem's limits, so nothing is left unprocessed.
        return order, stored

    def commit(
        self,
        before: Order,
        transition: Transition,
        event: OrderEvent | None,
        result: dict[str, Any] | None,
        now: datetime,
    ) -> Commit:
        """Without an event (the reconciler's expiry) no event record is written."""
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
            items.append(self._event_record(before, event, result or {}, now))
        items += self._capacity_items(transition.effect)
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if event is not None and codes[1] == "ConditionalCheckFailed":
                return Commit.EVENT_EXISTS
            if codes[0] == "ConditionalCheckFailed":
                return Commit.ORDER_MOVED
            if "ConditionalCheckFailed" in codes:
                raise CapacityDisagrees(
                    f"line {transition.effect and transition.effect.line_id} refused"
                    f" {transition.effect} for order {before.order_id}"
                ) from error
            raise
        return Commit.COMMITTED

    def _event_record(
        self, before: Order, event: OrderEvent, result: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_item(
                    {
                        "pk": order_pk(before.tenant_id, before.order_id),
                        "sk": EVENT_PREFIX + event.event_id,
                        "eventId": event.event_id,
                        "type": event.type.value,
                        "contentHash": event.content_hash(),
                        "result": result,
                        "recordedAt": format_timestamp(now),
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _capacity_items(self, effect: CapacityEffect | None) -> list[dict[str, Any]]:
        if effect is None:
            return []
        match effect.move:
            case CapacityMove.RELEASE:
                if effect.claim_day is None:
                    raise CapacityDisagrees(f"reservation on {effect.line_id} has no claim day")
                return self._lines.release_items(effect.line_id, effect.amount, effect.claim_day)
            case CapacityMove.DRAW:
                return self._lines.draw_items(effect.line_id, effect.amount, effect.drawn)
            case CapacityMove.RESTORE:
                return self._lines.restore_items(effect.line_id, effect.amount)
