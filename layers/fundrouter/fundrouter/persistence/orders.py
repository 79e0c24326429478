"""The Orders table.

Keys (the table and its indexes are defined in template.yaml):
- pk ``T#{tenantId}#O#{orderId}``, sk ``ORDER``: one order, addressed by what the
  tenant calls it, so intake is a single conditional put.
- GSI ``byTenant``: ``T#{tenantId}#{shard}`` / ``{createdAt}#{orderId}``: the
  tenant's orders, newest first, over ``TENANT_SHARDS`` partitions so one tenant is
  not one partition. A page merges the shards (docs/decisions.md, 21).
- GSI ``byTenantStatus``: ``T#{tenantId}#S#{status}#{shard}`` / same sort key:
  filtered listings without a scan or a filter expression.
- GSI ``byDue`` (sparse): ``dueShard`` / ``dueAt``: what the reconciler must look
  at by a time: a hold's expiry (MATCHED, APPROVED) or a RECEIVED order's re-drive
  time, over ``DUE_SHARDS`` partitions.
- GSI ``byLine`` (sparse): ``lineKey`` / ``pk``: the orders holding capacity on a
  line (MATCHED, APPROVED, DISBURSED), for the reconciler's audit.

``byTenant``, ``byTenantStatus`` and ``byDue`` project keys only: an order write
touches them only when their keys move, and the orders a read needs are then read
from the table with one BatchGetItem. Shards are a hash of the order's key.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.orders import (
    HOLDING_STATUSES,
    ID_CHARACTERS,
    RESERVING_STATUSES,
    Holding,
    Order,
    OrderStatus,
    UnreadableOrder,
)
from fundrouter.domain.paging import Page
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.retries import batch_get, read

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ORDER_SK: Final = "ORDER"
BY_TENANT: Final = "byTenant"
BY_TENANT_STATUS: Final = "byTenantStatus"
BY_DUE: Final = "byDue"
BY_LINE: Final = "byLine"
DUE_SHARDS: Final = 32
TENANT_SHARDS: Final = 8
# A RECEIVED order not matched within this long is matched by the reconciler itself.
REDRIVE_AFTER: Final = timedelta(seconds=60)
_KEY_ATTRIBUTES: Final = (
    "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "dueShard", "dueAt", "lineKey",
)  # fmt: skip
# An index sort key: "{createdAt}#{orderId}".
_POSITION: Final = re.compile(
    rf"\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}:\d{{2}}\.\d{{3}}Z#(?P<order_id>[{ID_CHARACTERS}]{{1,64}})"
)


def order_pk(tenant_id: str, order_id: str) -> str:
    return f"T#{tenant_id}#O#{order_id}"


def order_ids(pk: str) -> tuple[str, str] | None:
    """(tenant id, order id) from an order's partition key, None if it is none."""
    tenant, marker, order = pk.removeprefix("T#").partition("#O#")
    return (tenant, order) if pk.startswith("T#") and marker and tenant and order else None


def _tenant_key(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def status_key(tenant_id: str, status: OrderStatus) -> str:
    return f"T#{tenant_id}#S#{status}"


def _shard(pk: str, shards: int) -> int:
    return int(hashlib.sha256(pk.encode()).hexdigest()[:8], 16) % shards


def order_item(order: Order) -> dict[str, Any]:
    values = order.model_dump(mode="json", by_alias=True, exclude_none=True)
    newest_first = f"{format_timestamp(order.created_at)}#{order.order_id}"
    pk = order_pk(order.tenant_id, order.order_id)
    shard = _shard(pk, TENANT_SHARDS)
    values |= {
        "pk": pk,
        "sk": ORDER_SK,
        "gsi1pk": f"{_tenant_key(order.tenant_id)}#{shard}",
        "gsi1sk": newest_first,
        "gsi2pk": f"{status_key(order.tenant_id, order.status)}#{shard}",
        "gsi2sk": newest_first,
    }
    due = due_at(order)
    if due is not None:
        values |= {"dueShard": due_shard(pk), "dueAt": format_timestamp(due)}
    if order.status in HOLDING_STATUSES and order.line_id is not None:
        values["lineKey"] = order.line_id
    return to_item(values)


def order_put(table: str, before: Order, after: Order) -> dict[str, Any]:
    """A transaction's write of the order's new state, only over the version that was
    read (every write bumps it) and that version's status. The whole item is written,
    so every derived key comes from order_item alone."""
    return {
        "Put": {
            "TableName": table,
            "Item": order_item(after),
            "ConditionExpression": "version = :version AND #status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":version": {"N": str(before.version)},
                ":status": {"S": before.status.value},
            },
        }
    }


def due_shard(pk: str) -> str:
    return f"DUE#{_shard(pk, DUE_SHARDS)}"


def due_at(order: Order) -> datetime | None:
    """When the reconciler must look at the order, if ever."""
    if order.status is OrderStatus.RECEIVED:
        return order.updated_at + REDRIVE_AFTER
    if order.status in RESERVING_STATUSES:
        return order.hold_expires_at
    return None


def order_from_item(item: dict[str, Any]) -> Order:
    values = from_item(item)
    for key in _KEY_ATTRIBUTES:
        values.pop(key, None)
    return Order.model_validate(values)


class DynamoOrderRepository:
    def __init__(self, client: "DynamoDBClient", table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, order: Order) -> Order | None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=order_item(order),
                ConditionExpression="attribute_not_exists(pk)",
                # The stored order explains the refusal without a second read.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            existing: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            if existing is None:  # pragma: no cover - DynamoDB always returns it here
                raise
            return order_from_item(existing)
        return None

    def get(self, tenant_id: str, order_id: str) -> Order | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": order_pk(tenant_id, order_id)}, "sk": {"S": ORDER_SK}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else order_from_item(item)

    def list_for_tenant(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        """A page of the tenant's orders, newest first: the first ``limit`` index
        entries of every shard older than the cursor, merged, and the page's orders
        read with one BatchGetItem. Sort keys are unique and each order is in one
        shard, so the last entry of a page is the whole merge position."""
        if status is None:
            index, key_name, key = BY_TENANT, "gsi1pk", _tenant_key(tenant_id)
        else:
            index, key_name, key = BY_TENANT_STATUS, "gsi2pk", status_key(tenant_id, status)
        sort_name = key_name.removesuffix("pk") + "sk"  # gsi1pk -> gsi1sk
        before = None if cursor is None else _decode_cursor(cursor, tenant_id, key_name, key)
        entries, more = _merged(
            self._client,
            {
                "TableName": self._table,
                "IndexName": index,
                "ScanIndexForward": False,
                "Limit": limit,
            },
            (key_name, sort_name),
            [f"{key}#{shard}" for shard in range(TENANT_SHARDS)],
            None if before is None else ("<", before),
        )
        page = entries[:limit]
        orders = _read(self._client, self._table, page, order_from_item)
        return Page(
            items=[
                order
                for entry in page
                if (order := orders.get(entry["pk"]["S"])) is not None
                and (status is None or order.status is status)  # moved since indexed
            ],
            next_cursor=(
                _encode_cursor(
                    {"pk": page[-1]["pk"], "sk": page[-1]["sk"], key_name: {"S": key},
                     sort_name: page[-1][sort_name]}
                )
                if page and (more or len(entries) > limit)
                else None
            ),
        )  # fmt: skip


def _merged(
    client: "DynamoDBClient",
    query: dict[str, Any],
    names: tuple[str, str],
    partitions: list[str],
    sort_bound: tuple[str, str] | None,
    *,
    unlisted: Callable[[str, Exception], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Every partition's first ``Limit`` entries in index order (``names``: the
    index's key attributes), merged into that order (ties by table key), and
    whether any partition has more. ``sort_bound``: (operator, value) on the sort key.
    With ``unlisted``, a partition that cannot be read is handed to it and the
    others still answer; without it, the call fails."""
    key_name, sort_name = names
    entries: list[dict[str, Any]] = []
    more = False
    for partition in partitions:
        condition, values = f"{key_name} = :k", {":k": {"S": partition}}
        if sort_bound is not None:
            condition += f" AND {sort_name} {sort_bound[0]} :s"
            values[":s"] = {"S": sort_bound[1]}
        try:
            response = read(
                partial(
                    client.query,
                    **query,
                    KeyConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            )
        except Exception as error:
            if unlisted is None:
                raise
            unlisted(partition, error)
            continue
        entries += response.get("Items", [])
        more = more or "LastEvaluatedKey" in response
    entries.sort(
        key=lambda entry: (entry[sort_name]["S"], entry["pk"]["S"]),
        reverse=not query.get("ScanIndexForward", True),
    )
    return entries, more


def _read[T](
    client: "DynamoDBClient",
    table: str,
    entries: list[dict[str, Any]],
    decode: Callable[[dict[str, Any]], T],
) -> dict[str, T]:
    """The items of index entries, by pk, consistently: one BatchGetItem per 100."""
    keys = [{"pk": entry["pk"], "sk": entry["sk"]} for entry in entries]
    return {item["pk"]["S"]: decode(item) for item in batch_get(client, table, keys)}


def _encode_cursor(last_key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    raw = json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, tenant_id: str, key_name: str, key: str) -> str:
    """The position (sort key) a cursor of this very listing names. Accepted only if
    it is exactly the key of an order in the caller's own listing (its unsharded
    name): a cursor minted for another tenant or filter would start the queries
    outside the caller's range."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        plain = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor from error
    sort_name = key_name.removesuffix("pk") + "sk"  # gsi1pk -> gsi1sk
    if not isinstance(plain, dict) or set(plain) != {"pk", "sk", key_name, sort_name}:
        raise InvalidCursor
    position = _POSITION.fullmatch(str(plain[sort_name]))
    if position is None or plain != {
        "pk": order_pk(tenant_id, position["order_id"]),
        "sk": ORDER_SK,
        key_name: key,
        sort_name: position.string,
    }:
        raise InvalidCursor
    return position.string


class DynamoOrderIndexes:
    """The reconciler's reads: what is due by now, and what each line holds."""

    def __init__(self, client: "DynamoDBClient", table_name: str) -> None:
        self._client = client
        self._table = table_name

    def due(
        self, now: datetime, limit: int, unlisted: Callable[[str, Exception], None]
    ) -> list[Order | UnreadableOrder]:
        """Orders whose hold expired or whose match is overdue, oldest first: the
        oldest ``limit`` entries over every shard, read from the table (one
        BatchGetItem per 100), less any that moved since they were indexed. An item
        that does not decode is returned as UnreadableOrder, and a shard that cannot
        be listed is handed to ``unlisted``, not raised: one bad item or partition
        must not hide every order due beside it."""
        entries, _ = _merged(
            self._client,
            {
                "TableName": self._table,
                "IndexName": BY_DUE,
                "Limit": limit,
            },
            ("dueShard", "dueAt"),
            [f"DUE#{shard}" for shard in range(DUE_SHARDS)],
            ("<=", format_timestamp(now)),
            unlisted=unlisted,
        )
        orders = _read(self._client, self._table, entries[:limit], _decoded)
        return [
            order
            for entry in entries[:limit]
            if (order := orders.get(entry["pk"]["S"])) is not None
            and (isinstance(order, UnreadableOrder) or _still_due(order, now))
        ]

    def holdings(self, line_id: str) -> list[Holding]:
        """Every order holding capacity on the line (eventually consistent)."""
        holdings: list[Holding] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_LINE,
            "KeyConditionExpression": "lineKey = :line",
            "ExpressionAttributeValues": {":line": {"S": line_id}},
        }
        while True:
            page = read(partial(self._client.query, **query))
            for item in page.get("Items", []):
                values = from_item(item)
                holdings.append(
                    Holding(
                        tenant_id=str(values["tenantId"]),
                        order_id=str(values["orderId"]),
                        status=OrderStatus(values["status"]),
                        reserved=int(values.get("reserved", 0)),
                        outstanding=int(values.get("outstanding", 0)),
                    )
                )
            if "LastEvaluatedKey" not in page:
                return holdings
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _still_due(order: Order, now: datetime) -> bool:
    due = due_at(order)
    return due is not None and due <= now


def _decoded(item: dict[str, Any]) -> Order | UnreadableOrder:
    try:
        return order_from_item(item)
    except (ValueError, KeyError, TypeError) as error:  # pydantic's ValidationError too
        names = [item.get(name, {}).get("S", "?") for name in ("tenantId", "orderId")]
        return UnreadableOrder("/".join(names), type(error).__name__)
