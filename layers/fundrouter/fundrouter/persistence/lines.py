"""The Lines table: lending lines' configuration and counters, their daily usage, and
the tenants' routing policies (see docs/decisions.md).

Items:
- ``LINE#{lineId}`` / ``LINE``: configuration, ``configVersion``, and the counters
  ``reserved``, ``drawn`` and ``held`` (= reserved + drawn, kept so a condition can
  compare it with the limit: DynamoDB conditions cannot add), and how many orders
  hold capacity on the line by status (``nMatched``, ``nApproved``, ``nDisbursed``;
  absent reads as 0), moved by the transaction that moves the order, so reading a
  line reads no orders. ``kind = LINE`` puts it in the sparse ``lines`` index.
- ``LINE#{lineId}#DAY#{yyyy-mm-dd}`` / ``DAY``: what was claimed on that local day.
  A new day is a new item, so nothing is ever reset. Its own partition key keeps
  the day's writes off the line item's partition, which every claim also writes.
- ``TENANT#{tenantId}`` / ``ROUTING``: a tenant's routing policy.
- ``CATALOG`` / ``VERSION``: the change marker, bumped after every configuration or
  routing write, so a matcher can tell with one small read whether its cached view
  of lines and policies predates a change before it refuses an order.

Every capacity operation is one ``TransactWriteItems`` over the line item and, where
the day's usage moves, its day item, conditioned on the same rules as the pure model
in fundrouter.domain.lines. A refused condition is explained by running the pure model
on the item DynamoDB returns with the cancellation, not by a second read.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.errors import DomainError
from fundrouter.domain.lines import (
    DailyLimitReached,
    Line,
    LineConfig,
    LineCounters,
    LineCurrencyLocked,
    LineNotFound,
    LineRecord,
    StaleLineConfig,
)
from fundrouter.domain.orders import HOLDING_STATUSES, OrderStatus
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.retries import DEFAULT_BACKOFF, Backoff, batch_get, read
from fundrouter.service.ports import CatalogMarker

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LINE_SK: Final = "LINE"
ROUTING_SK: Final = "ROUTING"
CATALOG_KEY: Final = {"pk": {"S": "CATALOG"}, "sk": {"S": "VERSION"}}
MARKER_ATTEMPTS: Final = 5
# Lines whose latest change the marker names: more than are ever changed within the
# lines index's replication lag (well under a second).
MARKER_RECENT: Final = 32
LINES_INDEX: Final = "lines"
# Day items are kept for audits, then collected by TTL; TTL never moves capacity.
DAY_ITEM_DAYS_KEPT: Final = 400
_LINE_ATTRIBUTES: Final = (
    "pk", "sk", "kind", "lineId", "reserved", "drawn", "held",
    "configVersion", "createdAt", "updatedAt",
)  # fmt: skip


def line_pk(line_id: str) -> str:
    return f"LINE#{line_id}"


DAY_SK: Final = "DAY"


def day_key(line_id: str, day: str) -> dict[str, Any]:
    return {"pk": _s(f"{line_pk(line_id)}#DAY#{day}"), "sk": _s(DAY_SK)}


def count_attribute(status: OrderStatus) -> str:
    """The line item's count of its orders in `status` (MATCHED: nMatched)."""
    return f"n{status.value.title()}"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def line_from_item(item: dict[str, Any], days: dict[str, int] | None = None) -> LineRecord:
    values = from_item(item)
    config = LineConfig.model_validate(values["config"])
    counters = LineCounters(
        reserved=int(values.get("reserved", 0)),
        drawn=int(values.get("drawn", 0)),
        daily_used=days or {},
    )
    return LineRecord(
        line=Line(line_id=str(values["lineId"]), config=config, counters=counters),
        config_version=int(values["configVersion"]),
        created_at=str(values["createdAt"]),
        updated_at=str(values["updatedAt"]),
        matched_total=int(values.get("matchedTotal", 0)),
        orders={s.value: int(values.get(count_attribute(s), 0)) for s in HOLDING_STATUSES},
    )


@dataclass(frozen=True)
class DynamoLineRepository:
    client: "DynamoDBClient"
    table: str
    backoff: Backoff = DEFAULT_BACKOFF

    # ------------------------------------------------------------ configuration

    def put_config(
        self, line_id: str, config: LineConfig, now: datetime, expected_version: int | None = None
    ) -> LineRecord:
        """Create or replace the configuration; the counters are never written here.
        With ``expected_version`` (PATCH), only if nobody changed it since."""
        try:
            response = self.client.update_item(
                **self._config_update(line_id, config, now, expected_version),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = from_item(error.response.get("Item", {}))  # type: ignore[arg-type]
            if expected_version is not None and old.get("configVersion") != expected_version:
                raise StaleLineConfig(line_id) from error
            raise LineCurrencyLocked(line_id) from error
        record = line_from_item(response["Attributes"])
        self._changed(now, record)
        return record

    def _config_update(
        self, line_id: str, config: LineConfig, now: datetime, expected_version: int | None
    ) -> dict[str, Any]:
        # The configuration is one map attribute: replacing it cannot touch a counter.
        attribute_values: dict[str, Any] = {
            ":config": to_item(
                {"c": config.model_dump(mode="json", by_alias=True, exclude_none=True)}
            )["c"],
            ":zero": _n(0),
            ":one": _n(1),
            ":now": _s(format_timestamp(now)),
            ":kind": _s(LINE_SK),
            ":id": _s(line_id),
            ":cur": _s(config.currency),
        }
        expression = (
            "SET config = :config,"
            " configVersion = if_not_exists(configVersion, :zero) + :one,"
            " reserved = if_not_exists(reserved, :zero), drawn = if_not_exists(drawn, :zero),"
            " held = if_not_exists(held, :zero), kind = :kind, lineId = :id,"
            " createdAt = if_not_exists(createdAt, :now), updatedAt = :now"
        )
        # Amounts held in one currency cannot be re-labelled as another.
        condition = "attribute_not_exists(config) OR config.currency = :cur OR held = :zero"
        if expected_version is not None:
            condition = f"({condition}) AND configVersion = :expected"
            attribute_values[":expected"] = _n(expected_version)
        return {
            "TableName": self.table,
            "Key": {"pk": _s(line_pk(line_id)), "sk": _s(LINE_SK)},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": attribute_values,
        }

    def catalog_marker(self) -> CatalogMarker:
        item = read(
            partial(
                self.client.get_item, TableName=self.table, Key=CATALOG_KEY, ConsistentRead=True
            )
        ).get("Item")
        values = from_item(item) if item else {}
        recent = {line_id: int(entry["cv"]) for line_id, entry in values.get("recent", {}).items()}
        return CatalogMarker(int(values.get("version", 0)), recent)

    def _changed(self, now: datetime, record: LineRecord | None = None) -> None:
        """Bump the change marker, after the write it announces, never before: a matcher
        that saw the new marker must find the new configuration. The write is answered
        only once this returns, so every order sent after it sees both. Admin writes
        are rare, so an optimistic read-modify-write keeps ``recent`` bounded."""
        for _ in range(MARKER_ATTEMPTS):
            item = self.client.get_item(
                TableName=self.table, Key=CATALOG_KEY, ConsistentRead=True
            ).get("Item")
            values = from_item(item) if item else {}
            version = int(values.get("version", 0))
            recent: dict[str, Any] = dict(values.get("recent", {}))
            if record is not None:
                recent[record.line.line_id] = {"v": version + 1, "cv": record.config_version}
                kept = sorted(recent.items(), key=lambda entry: -int(entry[1]["v"]))
                recent = dict(kept[:MARKER_RECENT])
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=CATALOG_KEY
                    | to_item(
                        {
                            "version": version + 1,
                            "recent": recent,
                            "updatedAt": format_timestamp(now),
                        }
                    ),
                    ConditionExpression="attribute_not_exists(pk) OR version = :v",
                    ExpressionAttributeValues={":v": _n(version)},
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue
            return
        raise StaleLineConfig("catalog")  # another writer kept winning: the caller retries

    def get(self, line_id: str, days: Sequence[str] = ()) -> LineRecord | None:
        """The line and its usage on ``days``, in one consistent BatchGetItem."""
        keys = [{"pk": _s(line_pk(line_id)), "sk": _s(LINE_SK)}]
        keys += [day_key(line_id, day) for day in days]
        items = self._batch_get(keys)
        line_item = next((i for i in items if i["sk"]["S"] == LINE_SK), None)
        if line_item is None:
            return None
        return line_from_item(line_item, _day_usage(items))

    def list_lines(self) -> list[LineRecord]:
        """Every line, by lineId: their keys from the sparse, keys-only ``lines``
        index, the items themselves by BatchGetItem (consistently). Keys only, because
        every claim writes a line item and all of them share the index's one partition
        key: with the item projected, every claim in the system would write there too."""
        keys: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": LINES_INDEX,
            "KeyConditionExpression": "kind = :kind",
            "ExpressionAttributeValues": {":kind": _s(LINE_SK)},
        }
        while True:
            page = read(partial(self.client.query, **query))
            keys += [{"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        records = [line_from_item(item) for item in self._batch_get(keys)]
        return sorted(records, key=lambda record: record.line.line_id)

    def usage_on(self, day_by_line: dict[str, str]) -> dict[str, int]:
        """Each line's usage on its own local day (time zones differ per line)."""
        keys = [day_key(line_id, day) for line_id, day in day_by_line.items()]
        usage = dict.fromkeys(day_by_line, 0)
        for item in self._batch_get(keys):
            usage[item["lineId"]["S"]] = int(item["used"]["N"])
        return usage

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get(self.client, self.table, keys, self.backoff)

    # ------------------------------------------------------------ capacity

    def claim_items(self, record: LineRecord, amount: int, now: datetime) -> list[dict[str, Any]]:
        """The writes of a claim, for a transaction the caller may extend (the matcher
        adds the order's transition). Conditions mirror Line.claim: same configuration
        as read (so its limit, daily cap, window and currency hold), ACTIVE, inside the
        window, held + amount <= limit, and today's usage + amount <= daily cap."""
        line = record.line
        config = line.config
        if config.daily_limit is not None and amount > config.daily_limit:
            # A first claim of the day meets no stored usage to compare: refuse here
            # what no usage could make fit, for the model's first reason (the currency
            # is the ranking's to check, and pinned by the configuration version).
            raise (
                line.admission_refusal(config.currency, now)
                or line.capacity_refusal(amount, now)
                or DailyLimitReached(line.line_id, line.day_of(now), config.daily_limit, amount)
            )
        return [
            {"Update": self._line_claim(record, amount, format_timestamp(now))},
            {"Update": self._day_claim(line, amount, now)},
        ]

    def _line_claim(self, record: LineRecord, amount: int, moment: str) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": {"pk": _s(line_pk(record.line.line_id)), "sk": _s(LINE_SK)},
            "UpdateExpression": (
                "SET reserved = reserved + :a, held = held + :a,"
                " matchedTotal = if_not_exists(matchedTotal, :zero) + :a"
            ),
            "ConditionExpression": (
                "configVersion = :cv AND config.#status = :active AND held <= :room"
                " AND (attribute_not_exists(config.activeFrom) OR config.activeFrom <= :now)"
                " AND (attribute_not_exists(config.activeUntil) OR config.activeUntil > :now)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":a": _n(amount),
                ":cv": _n(record.config_version),
                ":active": _s("ACTIVE"),
                ":room": _n(record.line.config.limit - amount),
                ":now": _s(moment),
                ":zero": _n(0),
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _day_claim(self, line: Line, amount: int, now: datetime) -> dict[str, Any]:
        day = line.day_of(now)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": day_key(line.line_id, day),
            "UpdateExpression": (
                "SET used = if_not_exists(used, :zero) + :a, expiresAt = :ttl,"
                " lineId = :line, #day = :day"
            ),
            "ExpressionAttributeNames": {"#day": "day"},
            "ExpressionAttributeValues": {
                ":line": _s(line.line_id),
                ":day": _s(day),
                ":a": _n(amount),
                ":zero": _n(0),
                ":ttl": _n(int((now + timedelta(days=DAY_ITEM_DAYS_KEPT)).timestamp())),
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if line.config.daily_limit is not None:
            update["ConditionExpression"] = "attribute_not_exists(used) OR used <= :dayroom"
            update["ExpressionAttributeValues"][":dayroom"] = _n(line.config.daily_limit - amount)
        return update

    def release_items(self, line_id: str, by_day: Mapping[str, int]) -> list[dict[str, Any]]:
        """Reservations released: the line by their sum, each claim day by its part."""
        amount = sum(by_day.values())
        return [
            self._counter_update(
                line_id,
                "SET reserved = reserved - :a, held = held - :a",
                "reserved >= :a",
                {":a": _n(amount)},
            ),
            *(self._day_give_back(line_id, day, part) for day, part in sorted(by_day.items())),
        ]

    def draw_items(
        self, line_id: str, reserved_amount: int, drawn_amount: int, claim_day: str | None = None
    ) -> list[dict[str, Any]]:
        """Mirrors Line.draw: the undrawn rest is freed on the line and on its claim day."""
        freed = reserved_amount - drawn_amount
        items = [
            self._counter_update(
                line_id,
                "SET reserved = reserved - :r, drawn = drawn + :d, held = held - :freed",
                "reserved >= :r",
                {":r": _n(reserved_amount), ":d": _n(drawn_amount), ":freed": _n(freed)},
            )
        ]
        if claim_day is not None and freed > 0:
            items.append(self._day_give_back(line_id, claim_day, freed))
        return items

    def late_draw_items(
        self, line_id: str, amount: int, claim_day: str | None, within: LineRecord | None
    ) -> list[dict[str, Any]]:
        """Mirrors Line.draw_late. With `within` (the line as read, with room for the
        amount), only if the line still has that room under that configuration;
        without, unconditionally: the money is out, held may pass the limit."""
        condition, values = "", {":a": _n(amount)}
        if within is not None:
            condition = "configVersion = :cv AND held <= :room"
            values |= {
                ":cv": _n(within.config_version),
                ":room": _n(within.line.config.limit - amount),
            }
        items = [
            self._counter_update(
                line_id, "SET drawn = drawn + :a, held = held + :a", condition, values
            )
        ]
        if claim_day is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": day_key(line_id, claim_day),
                        "UpdateExpression": (
                            "SET used = if_not_exists(used, :zero) + :a,"
                            " lineId = :line, #day = :day"
                        ),
                        "ExpressionAttributeNames": {"#day": "day"},
                        "ExpressionAttributeValues": {
                            ":a": _n(amount),
                            ":zero": _n(0),
                            ":line": _s(line_id),
                            ":day": _s(claim_day),
                        },
                    }
                }
            )
        return items

    def with_counts(
        self, items: list[dict[str, Any]], moves: Mapping[str, Mapping[OrderStatus, int]]
    ) -> list[dict[str, Any]]:
        """`items` (a transaction's writes) with each line's order counts moved as
        `moves` (fundrouter.domain.lines.holding_moves) says: folded into the write of
        that line item where there is one (a transaction writes an item once), else a
        write of its own (APPROVED moves no capacity). ADD counts an absent count
        from 0. Counts are never conditions: they report, they guard nothing."""
        items = list(items)
        for line_id, counts in moves.items():
            key = {"pk": _s(line_pk(line_id)), "sk": _s(LINE_SK)}
            names = {f"#c{i}": count_attribute(status) for i, status in enumerate(counts)}
            values = {f":c{i}": _n(step) for i, step in enumerate(counts.values())}
            adding = " ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
            found = next(
                (i for i, item in enumerate(items) if item.get("Update", {}).get("Key") == key),
                None,
            )
            if found is None:
                items.append(self._counter_update(line_id, adding.strip(), "", values))
                items[-1]["Update"]["ExpressionAttributeNames"] = names
                continue
            update = dict(items[found]["Update"])
            update["UpdateExpression"] += adding
            update["ExpressionAttributeNames"] = update.get("ExpressionAttributeNames", {}) | names
            update["ExpressionAttributeValues"] = update["ExpressionAttributeValues"] | values
            items[found] = {"Update": update}
        return items

    def _day_give_back(self, line_id: str, day: str, amount: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": day_key(line_id, day),
                "UpdateExpression": "SET used = used - :a",
                "ConditionExpression": "used >= :a",
                "ExpressionAttributeValues": {":a": _n(amount)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def restore_items(self, line_id: str, amount: int) -> list[dict[str, Any]]:
        return [
            self._counter_update(
                line_id,
                "SET drawn = drawn - :a, held = held - :a",
                "drawn >= :a",
                {":a": _n(amount)},
            )
        ]

    def _counter_update(
        self, line_id: str, expression: str, condition: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": _s(line_pk(line_id)), "sk": _s(LINE_SK)},
                "UpdateExpression": expression,
                "ConditionExpression": " AND ".join(
                    filter(None, ["attribute_exists(pk)", condition])
                ),
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def explain_claim(
        self,
        record: LineRecord,
        amount: int,
        currency: str,
        now: datetime,
        reasons: list[dict[str, Any]],
    ) -> DomainError:
        """Which rule refused the claim, by running the pure model on the items as
        DynamoDB returned them with the cancellation."""
        line = self.refused_line(record, now, reasons)
        if isinstance(line, DomainError):
            return line
        refusal = line.admission_refusal(currency, now) or line.capacity_refusal(amount, now)
        return refusal or StaleLineConfig(record.line.line_id)

    def refused_line(
        self, record: LineRecord, now: datetime, reasons: list[dict[str, Any]]
    ) -> Line | DomainError:
        """The line as a cancelled claim found it (its counters and today's usage, from
        the items DynamoDB returned), or why there is none to judge: its configuration
        changed since `record` was read, or it is gone."""
        line_item = reasons[0].get("Item")
        current = record
        if line_item:
            current = line_from_item(line_item)
            if current.config_version != record.config_version:
                return StaleLineConfig(record.line.line_id)
        elif reasons[0].get("Code") == "ConditionalCheckFailed":
            return LineNotFound(record.line.line_id)
        used = from_item(reasons[1].get("Item", {})).get("used", 0) if len(reasons) > 1 else 0
        line = current.line
        today = {line.day_of(now): int(used)}
        counters = LineCounters(line.counters.reserved, line.counters.drawn, today)
        return Line(line.line_id, line.config, counters)

    # ------------------------------------------------------------ routing policies

    def put_routing(self, tenant_id: str, policy: RoutingPolicy, now: datetime) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=to_item(
                policy.model_dump(mode="json", by_alias=True)
                | {
                    "pk": f"TENANT#{tenant_id}",
                    "sk": ROUTING_SK,
                    "tenantId": tenant_id,
                    "updatedAt": format_timestamp(now),
                }
            ),
        )
        self._changed(now)

    def get_routing(self, tenant_id: str) -> RoutingPolicy | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": _s(f"TENANT#{tenant_id}"), "sk": _s(ROUTING_SK)},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        values = from_item(response["Item"])
        return RoutingPolicy.model_validate(
            {k: v for k, v in values.items() if k in {"strategy", "lineIds"}}
        )


def _day_usage(items: list[dict[str, Any]]) -> dict[str, int]:
    return {
        item["day"]["S"]: int(item["used"]["N"])
        for item in items
        if item["sk"]["S"] == DAY_SK and "used" in item
    }
