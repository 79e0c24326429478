"""The rolling audit's reads and its state.

- Holdings are listed, keys only, from the Orders table's ``byLine`` index (pk order,
  so a cursor resumes a line's walk where the last run stopped).
- A cut is one ``TransactGetItems`` of the line item (Lines table) and the listed
  orders (Orders table): one point for the counters and those orders, however many
  writes are in flight around it.
- Each line's audit state is its own item in the Lines table, ``AUDIT#{lineId}`` /
  ``AUDIT`` (not in the ``lines`` index: it has no ``kind``).
"""

import base64
import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from fundrouter.domain.orders import HOLDING_STATUSES, Holding, OrderStatus
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.lines import (
    CLAIMS_PER_MINUTE,
    LINE_SK,
    audit_key,
    line_pk,
    shard_count,
    shard_key,
)
from fundrouter.persistence.orders import BY_LINE, ORDER_SK, order_ids, order_pk
from fundrouter.persistence.retries import DEFAULT_BACKOFF, Backoff, batch_get, read, transact_get
from fundrouter.service.auditing import AuditState, Cut, Drift

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class DynamoAudit:
    client: "DynamoDBClient"
    orders: str
    lines: str
    backoff: Backoff = DEFAULT_BACKOFF

    def holding_keys(
        self, line_id: str, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        query: dict[str, Any] = {
            "TableName": self.orders,
            "IndexName": BY_LINE,
            "KeyConditionExpression": "lineKey = :line",
            "ExpressionAttributeValues": {":line": {"S": line_id}},
            "ProjectionExpression": "pk",
            "Limit": limit,
        }
        if cursor is not None:
            query["ExclusiveStartKey"] = _decode(cursor)
        page = read(partial(self.client.query, **query))
        keys = [ids for item in page.get("Items", []) if (ids := order_ids(item["pk"]["S"]))]
        last = page.get("LastEvaluatedKey")
        return keys, None if last is None else _encode(last)

    def cut(self, line_id: str, keys: list[tuple[str, str]]) -> Cut | None:
        """One transactional read of the line's counters and the orders; a sharded
        line's counters are the sums of its shard items, read in the same cut (a
        second one, once the first says how many there are)."""
        shards = 1
        while True:
            cut = self._cut(line_id, keys, shards)
            if not isinstance(cut, int):
                return cut
            shards = cut

    def _cut(self, line_id: str, keys: list[tuple[str, str]], shards: int) -> Cut | int | None:
        """The cut, or how many shard items it must read instead."""
        line_keys = [{"pk": {"S": line_pk(line_id)}, "sk": {"S": LINE_SK}}]
        line_keys += [shard_key(line_id, i) for i in range(1, shards)]
        gets = [{"Get": {"TableName": self.lines, "Key": key}} for key in line_keys]
        gets += [
            {
                "Get": {
                    "TableName": self.orders,
                    "Key": {"pk": {"S": order_pk(*key)}, "sk": {"S": ORDER_SK}},
                    "ProjectionExpression": "tenantId, orderId, lineId, #s, reserved, outstanding",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            for key in keys
        ]
        found = transact_get(self.client, gets, self.backoff)
        line, counted, orders = found[0], found[:shards], found[shards:]
        if line is None:
            return None
        if shard_count(line) != shards:
            return shard_count(line)
        items = [from_item(item) for item in counted if item]
        holdings = []
        for item in orders:
            values = from_item(item) if item else {}
            status = values.get("status")
            if values.get("lineId") == line_id and status in HOLDING_STATUSES:
                holdings.append(
                    Holding(
                        tenant_id=str(values["tenantId"]),
                        order_id=str(values["orderId"]),
                        status=OrderStatus(status),
                        reserved=int(values.get("reserved", 0)),
                        outstanding=int(values.get("outstanding", 0)),
                    )
                )
        return Cut(
            sum(int(item.get("reserved", 0)) for item in items),
            sum(int(item.get("drawn", 0)) for item in items),
            holdings,
        )

    def audit_states(self, line_ids: list[str]) -> dict[str, AuditState]:
        items = batch_get(self.client, self.lines, [audit_key(i) for i in line_ids], self.backoff)
        states = [_state(from_item(item)) for item in items]
        return {state.line_id: state for state in states}

    def save_audit(self, state: AuditState) -> None:
        values: dict[str, Any] = {
            "lineId": state.line_id,
            "cursor": state.cursor,
            "passStartedAt": state.pass_started_at,
            "reserved": state.reserved,
            "drawn": state.drawn,
            "orders": list(state.orders),
            "orderCount": state.order_count,
            "lastFullPassAt": state.last_full_pass_at,
            "lastPassOrders": state.last_pass_orders,
            "drift": None if state.drift is None else state.drift.values(),
            "unconfirmed": None if state.unconfirmed is None else state.unconfirmed.values(),
            "sampledAt": state.sampled_at,
            "sampledTotal": state.sampled_total,
            CLAIMS_PER_MINUTE: state.claims_per_minute,
        }
        item = audit_key(state.line_id) | to_item(
            {k: v for k, v in values.items() if v is not None}
        )
        self.client.put_item(TableName=self.lines, Item=item)


def _drift(line_id: str, values: dict[str, Any] | None) -> Drift | None:
    if values is None:
        return None
    return Drift(
        line_id=line_id,
        reserved=int(values["reserved"]),
        expected_reserved=int(values["expectedReserved"]),
        drawn=int(values["drawn"]),
        expected_drawn=int(values["expectedDrawn"]),
        orders=tuple(str(o) for o in values.get("orders", [])),
    )


def _state(values: dict[str, Any]) -> AuditState:
    line_id = str(values["lineId"])
    return AuditState(
        line_id=line_id,
        cursor=values.get("cursor"),
        pass_started_at=values.get("passStartedAt"),
        reserved=int(values.get("reserved", 0)),
        drawn=int(values.get("drawn", 0)),
        orders=tuple(str(o) for o in values.get("orders", [])),
        order_count=int(values.get("orderCount", 0)),
        last_full_pass_at=values.get("lastFullPassAt"),
        last_pass_orders=int(values.get("lastPassOrders", 0)),
        drift=_drift(line_id, values.get("drift")),
        unconfirmed=_drift(line_id, values.get("unconfirmed")),
        sampled_at=values.get("sampledAt"),
        sampled_total=int(values.get("sampledTotal", 0)),
        claims_per_minute=int(values.get(CLAIMS_PER_MINUTE, 0)),
    )


def _encode(last_key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode()


def _decode(cursor: str) -> dict[str, Any]:
    """Only the reconciler writes and reads these cursors (never a client)."""
    return {
        name: {"S": value} for name, value in json.loads(base64.urlsafe_b64decode(cursor)).items()
    }
