"""An order's history beyond the order item.

The order item keeps its newest entries (domain.orders.RECENT_HISTORY); each older
entry is an item of its own in the order's partition, ``sk = HIST#{n:010d}`` (n counts
from 0, oldest first), written in the same ``TransactWriteItems`` that moves it off
the order item. An entry never changes once written, so the order item read first
says exactly which entries are items already: all those numbered below its first
recent entry.
"""

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any, Final

from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.orders import HistoryEntry, Order, spilled_history
from fundrouter.domain.paging import Page
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HIST_PREFIX: Final = "HIST#"
_HIST_SK: Final = re.compile(r"HIST#(?P<number>\d{10})")


def history_sk(number: int) -> str:
    return f"{HIST_PREFIX}{number:010d}"


def spill_items(table: str, before: Order, after: Order) -> list[dict[str, Any]]:
    """The puts that store the entries the write from `before` to `after` moves off
    the order item (none, or one, but for orders stored before the bound). Without
    a condition: the order's own condition decides the transaction, and an entry put
    again holds the same content."""
    pk = order_pk(after.tenant_id, after.order_id)
    return [
        {
            "Put": {
                "TableName": table,
                "Item": to_item(
                    {"pk": pk, "sk": history_sk(number)}
                    | entry.model_dump(mode="json", by_alias=True, exclude_none=True)
                ),
            }
        }
        for number, entry in spilled_history(before, after)
    ]


class DynamoOrderHistory:
    def __init__(self, client: "DynamoDBClient", table_name: str) -> None:
        self._client = client
        self._table = table_name

    def page(
        self, tenant_id: str, order_id: str, limit: int, cursor: str | None
    ) -> Page[HistoryEntry] | None:
        """Entries oldest first from the cursor's; None if there is no such order.
        One read of the order item, and one query when the page starts among the
        entries stored apart."""
        pk = order_pk(tenant_id, order_id)
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": pk}, "sk": {"S": ORDER_SK}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        order = order_from_item(response["Item"])
        start = 0 if cursor is None else _decode_cursor(cursor, pk, order.history_total)
        end = min(start + limit, order.history_total)
        first_recent = order.first_recent()
        entries: list[HistoryEntry] = []
        if start < first_recent:
            entries = self._stored(pk, start, min(end, first_recent))
        if end > first_recent:
            entries += order.history[max(start, first_recent) - first_recent : end - first_recent]
        return Page(
            items=entries,
            next_cursor=_encode_cursor(pk, end) if end < order.history_total else None,
        )

    def _stored(self, pk: str, start: int, end: int) -> list[HistoryEntry]:
        """Entries start..end-1, all items already (the order item said so)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":first": {"S": history_sk(start)},
                ":last": {"S": history_sk(end - 1)},
            },
            "ConsistentRead": True,
        }
        # A page is far below the 1 MB a query returns (100 entries of ~100 bytes).
        items = self._client.query(**query).get("Items", [])
        if len(items) != end - start:  # pragma: no cover - written with the order item
            raise RuntimeError(f"{pk} history {start}..{end - 1}: {len(items)} items")
        return [HistoryEntry.model_validate(_entry(item)) for item in items]


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    values = from_item(item)
    del values["pk"], values["sk"]
    return values


def _encode_cursor(pk: str, number: int) -> str:
    raw = json.dumps({"pk": pk, "sk": history_sk(number)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, pk: str, total: int) -> int:
    """Only a cursor this order's pages issued: its own key, an entry it has."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor from error
    if not isinstance(plain, dict) or set(plain) != {"pk", "sk"} or plain["pk"] != pk:
        raise InvalidCursor
    position = _HIST_SK.fullmatch(str(plain["sk"]))
    if position is None or not 0 < int(position["number"]) < total:
        raise InvalidCursor
    return int(position["number"])
