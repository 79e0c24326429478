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
- A sharded line (decision 31; ``config.shards`` K > 1, or ever was): the line item is
  shard 0 and also holds ``cap`` and ``dayCap`` (its shares of the limit and of the
  daily cap) and ``shardItems`` (how many shard items exist, >= K);
  ``LINE#{lineId}#S#{i}`` / ``SHARD`` for i >= 1 holds the same counters, counts and
  shares and a copy of ``configVersion``; each shard has its own day items,
  ``LINE#{lineId}#S#{i}#DAY#{yyyy-mm-dd}``. The shares sum to the limit and the daily
  cap; a claim on a shard pins its share (``cap = :cap``) and checks
  ``held <= cap - amount`` there, so releases move only ``reserved``/``held``/``used``
  as on an unsharded line, on the shard the order records.
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
from dataclasses import dataclass, replace
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
    Move,
    Shard,
    StaleLineConfig,
    split,
)
from fundrouter.domain.orders import HOLDING_STATUSES, OrderStatus
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.retries import (
    DEFAULT_BACKOFF,
    Backoff,
    batch_get,
    read,
    transact,
)
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
SHARD_SK: Final = "SHARD"
CONFIG_ATTEMPTS: Final = 5


def _shard_pk(line_id: str, shard: int | None) -> str:
    return line_pk(line_id) + (f"#S#{shard}" if shard else "")


AUDIT_SK: Final = "AUDIT"
# The claim rate the reconciler measures, on the line's audit item (persistence.audit).
CLAIMS_PER_MINUTE: Final = "claimsPerMinute"


def audit_key(line_id: str) -> dict[str, Any]:
    return {"pk": _s(f"AUDIT#{line_id}"), "sk": _s(AUDIT_SK)}


def shard_key(line_id: str, shard: int | None = None) -> dict[str, Any]:
    """The item holding shard `shard`'s counters: the line item for 0 (or None)."""
    return {"pk": _s(_shard_pk(line_id, shard)), "sk": _s(SHARD_SK if shard else LINE_SK)}


def day_key(line_id: str, day: str, shard: int | None = None) -> dict[str, Any]:
    return {"pk": _s(f"{_shard_pk(line_id, shard)}#DAY#{day}"), "sk": _s(DAY_SK)}


def count_attribute(status: OrderStatus) -> str:
    """The line item's count of its orders in `status` (MATCHED: nMatched)."""
    return f"n{status.value.title()}"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def shard_count(item: dict[str, Any]) -> int:
    """How many shard items a line item says exist (1: never sharded)."""
    return int(item["shardItems"]["N"]) if "shardItems" in item else 1


def line_from_item(
    item: dict[str, Any],
    days: dict[str, int] | None = None,
    shard_items: Sequence[dict[str, Any]] = (),
    shard_days: Mapping[int, dict[str, int]] | None = None,
) -> LineRecord:
    """The line as stored; a sharded one from its line item (shard 0) and the other
    shard items, its counters, counts and days summed over them."""
    values = from_item(item)
    config = LineConfig.model_validate(values["config"])
    counts = {s.value: int(values.get(count_attribute(s), 0)) for s in HOLDING_STATUSES}
    shards: tuple[Shard, ...] = ()
    matched_total = int(values.get("matchedTotal", 0))
    if "cap" in values:
        by_index = {0: values} | {int(v["shardNo"]): v for v in map(from_item, shard_items)}
        shard_days = {0: days or {}} | dict(shard_days or {})
        shards = tuple(
            _shard(i, by_index.get(i, {}), config, shard_days.get(i, {}))
            for i in range(shard_count(item))
        )
        for extra in by_index.values():
            if extra is not values:
                matched_total += int(extra.get("matchedTotal", 0))
                for status in HOLDING_STATUSES:
                    counts[status.value] += int(extra.get(count_attribute(status), 0))
        used: dict[str, int] = {}
        for shard in shards:
            for day, amount in shard.daily_used.items():
                used[day] = used.get(day, 0) + amount
        counters = LineCounters(sum(s.reserved for s in shards), sum(s.drawn for s in shards), used)
    else:
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
        matched_total=matched_total,
        orders=counts,
        shards=shards,
        short="closed" in values,
    )


def _shard(index: int, values: dict[str, Any], config: LineConfig, days: dict[str, int]) -> Shard:
    day_cap = values.get("dayCap") if config.daily_limit is not None else None
    return Shard(
        index,
        cap=int(values.get("cap", 0)),
        day_cap=None if day_cap is None and config.daily_limit is None else int(day_cap or 0),
        reserved=int(values.get("reserved", 0)),
        drawn=int(values.get("drawn", 0)),
        daily_used=days,
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
        With ``expected_version`` (PATCH), only if nobody changed it since. A sharded
        line (K > 1, or ever sharded) is written with its shares (_put_sharded)."""
        if config.shards > 1:
            return self._put_sharded(line_id, config, now, expected_version)
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
            if "cap" in old:
                return self._put_sharded(line_id, config, now, expected_version)
            if expected_version is not None and old.get("configVersion") != expected_version:
                raise StaleLineConfig(line_id) from error
            raise LineCurrencyLocked(line_id) from error
        record = line_from_item(response["Attributes"])
        self._changed(now, record)
        return record

    def _put_sharded(
        self, line_id: str, config: LineConfig, now: datetime, expected_version: int | None
    ) -> LineRecord:
        """One transaction: the configuration, every shard item's copy of its version,
        and the shares set anew from the counters as read: each active shard gets
        what it holds plus an even part of the room left (or, with less room than
        held, no shard any room while another is short); a removed shard keeps what it
        holds. Each share is conditioned on its shard's counters still fitting it, and
        the version on the one read (claims in flight pin it), so a change of K or of
        the limit while claims run is exact; refused, it is read and tried again."""
        for _ in range(CONFIG_ATTEMPTS):
            current = self.get(line_id)
            day = Line(line_id, config).day_of(now)
            if current is not None:
                current = self.get(line_id, [day])
            items = self._sharded_config(
                line_id, config, current, now=now, day=day, expected_version=expected_version
            )
            if not transact(self.client, items, self.backoff):
                record = self.get(line_id)
                assert record is not None  # written just now  # noqa: S101
                self._changed(now, record)
                return record
        raise StaleLineConfig(line_id)

    def reshare(self, record: LineRecord, now: datetime) -> bool:
        """A closed (short) line that has room again: its shares set anew as a
        configuration write sets them, on the same configuration and version, and
        reopened. False when the line moved since `record` was read."""
        config = record.line.config
        day = record.line.day_of(now)
        items = self._sharded_config(
            record.line.line_id, config, record, now=now, day=day, expected_version=None, step=0
        )
        return not transact(self.client, items, self.backoff)

    def closing_items(self, record: LineRecord, drawn_on: int | None) -> list[dict[str, Any]]:
        """A sharded line closed to claims on every shard but `drawn_on` (whose write,
        late_draw_items with `close`, closes it), for a draw past its limit: another
        shard's room must not lend what the line no longer has (reshare reopens it)."""
        line_id = record.line.line_id
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": shard_key(line_id, shard.index),
                    "UpdateExpression": "SET closed = :t",
                    "ExpressionAttributeValues": {":t": _n(1)},
                }
            }
            for shard in record.shards
            if shard.index != (drawn_on or 0)
        ]

    def _sharded_config(
        self,
        line_id: str,
        config: LineConfig,
        current: LineRecord | None,
        *,
        now: datetime,
        day: str,
        expected_version: int | None,
        step: int = 1,
    ) -> list[dict[str, Any]]:
        version, shards, recurrency = _shards_to_write(line_id, config, current, expected_version)
        count = len(shards)
        caps, day_caps, short = _targets(config, shards, day)
        values, sets, removes = _every_shard(line_id, config, version + step, now, short)
        conditions = ["(attribute_not_exists(held) OR held = :zero)"] if recurrency else []
        items = []
        for shard, cap, day_cap in zip(shards, caps, day_caps, strict=True):
            update: dict[str, Any] = {
                "TableName": self.table,
                "Key": shard_key(line_id, shard.index),
                "ExpressionAttributeValues": values | {":cap": _n(cap)},
            }
            more = ["cap = :cap"]
            if day_cap is not None:
                more.append("dayCap = :dcap")
                update["ExpressionAttributeValues"][":dcap"] = _n(day_cap)
            compare = "<=" if cap >= shard.held else ">="
            checks = [*conditions, f"(attribute_not_exists(held) OR held {compare} :cap)"]
            if shard.index == 0:
                _line_item_part(
                    config, current, count, sets=more, values=update["ExpressionAttributeValues"],
                    conditions=checks,
                )  # fmt: skip
            else:
                more.append("shardNo = :index")
                update["ExpressionAttributeValues"][":index"] = _n(shard.index)
            update["UpdateExpression"] = (
                "SET "
                + ", ".join(sets + more)
                + (" REMOVE " + ", ".join(removes) if removes else "")
            )
            update["ConditionExpression"] = " AND ".join(checks)
            items.append({"Update": update})
            if day_cap is not None:
                kept = day_cap >= shard.daily_used.get(day, 0)
                items.append(self._day_check(line_id, day, shard.index, day_cap, kept))
        return items

    def _day_check(
        self, line_id: str, day: str, shard: int, day_cap: int, room_kept: bool
    ) -> dict[str, Any]:
        """The shard's usage on `day` still fits its daily share (room_kept), or still
        leaves it no room (a daily cap lowered below what was used)."""
        condition = (
            "attribute_not_exists(used) OR used <= :dcap"
            if room_kept
            else "attribute_not_exists(used) OR used >= :dcap"
        )
        if not room_kept and day_cap > 0:
            condition = "used >= :dcap"
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": day_key(line_id, day, shard),
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {":dcap": _n(day_cap)},
            }
        }

    def _config_update(
        self, line_id: str, config: LineConfig, now: datetime, expected_version: int | None
    ) -> dict[str, Any]:
        # The configuration is one map attribute: replacing it cannot touch a counter.
        attribute_values: dict[str, Any] = {
            ":config": to_item({"c": config_values(config)})["c"],
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
        # A line ever sharded is written with its shares (_put_sharded).
        condition = f"({condition}) AND attribute_not_exists(cap)"
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
        """The line and its usage on ``days``, in one consistent BatchGetItem, with
        the claim rate from its audit item (the same request); a sharded line's other
        shards and their days in a second one."""
        keys = [{"pk": _s(line_pk(line_id)), "sk": _s(LINE_SK)}, audit_key(line_id)]
        keys += [day_key(line_id, day) for day in days]
        items = self._batch_get(keys)
        line_item = next((i for i in items if i["sk"]["S"] == LINE_SK), None)
        if line_item is None:
            return None
        audit = next((i for i in items if i["sk"]["S"] == AUDIT_SK), {})
        rate = int(audit[CLAIMS_PER_MINUTE]["N"]) if CLAIMS_PER_MINUTE in audit else None
        if "cap" not in line_item:
            return replace(line_from_item(line_item, _day_usage(items)), claims_per_minute=rate)
        shards = range(1, shard_count(line_item))
        more = [shard_key(line_id, i) for i in shards]
        more += [day_key(line_id, day, i) for i in shards for day in days]
        found = self._batch_get(more) if more else []
        by_shard = _shard_day_usage(items + found)
        shard_items = [i for i in found if i["sk"]["S"] == SHARD_SK]
        record = line_from_item(line_item, by_shard.pop(0, {}), shard_items, by_shard)
        return replace(record, claims_per_minute=rate)

    def list_lines(self) -> list[LineRecord]:
        """Every line, by lineId: their keys from the sparse, keys-only ``lines``
        index, the items themselves by BatchGetItem (consistently); the shard items of
        sharded lines in one more. Keys only, because every claim writes a line item
        and all of them share the index's one partition key: with the item projected,
        every claim in the system would write there too."""
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
        line_items = self._batch_get(keys)
        sharded = [i for i in line_items if "cap" in i]
        more = [
            shard_key(item["lineId"]["S"], n)
            for item in sharded
            for n in range(1, shard_count(item))
        ]
        by_line: dict[str, list[dict[str, Any]]] = {}
        for found in self._batch_get(more) if more else []:
            by_line.setdefault(found["lineId"]["S"], []).append(found)
        records = [
            line_from_item(i, shard_items=by_line.get(i["lineId"]["S"], [])) for i in line_items
        ]
        return sorted(records, key=lambda record: record.line.line_id)

    def usage_on(
        self, day_by_line: dict[str, str], shards: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Each line's usage on its own local day (time zones differ per line), over
        all of its shards for those `shards` names (line id -> shard items)."""
        shards = shards or {}
        keys = [
            day_key(line_id, day, n)
            for line_id, day in day_by_line.items()
            for n in range(shards.get(line_id, 1))
        ]
        usage = dict.fromkeys(day_by_line, 0)
        for item in self._batch_get(keys):
            usage[item["lineId"]["S"]] += int(item["used"]["N"])
        return usage

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get(self.client, self.table, keys, self.backoff)

    # ------------------------------------------------------------ capacity

    def claim_items(
        self,
        record: LineRecord,
        amount: int,
        now: datetime,
        shard: int | None = None,
        moves: Sequence[Move] = (),
    ) -> list[dict[str, Any]]:
        """The writes of a claim, for a transaction the caller may extend (the matcher
        adds the order's transition). Conditions mirror Line.claim: same configuration
        as read (so its limit, daily cap, window and currency hold), ACTIVE, inside the
        window, held + amount <= limit, and today's usage + amount <= daily cap. On a
        sharded line, on `shard` and its shares as read, with `moves` of room into it
        from other shards (a claim that fits the line but no shard alone); the
        moves' writes come last (shard_moves), so the first two stay the shard's."""
        line = record.line
        config = line.config
        if record.shards:
            return self._shard_claim(record, amount, now, shard or 0, moves)
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

    def _shard_claim(
        self, record: LineRecord, amount: int, now: datetime, index: int, moves: Sequence[Move]
    ) -> list[dict[str, Any]]:
        """A claim on one shard: its configuration version (the copy a config write
        moves with the line's; status, window and currency are judged on that
        configuration as read) and its shares pinned as read, then the room there."""
        line = record.line
        refusal = line.admission_refusal(line.config.currency, now)
        if refusal is not None:
            raise refusal
        shard = record.shards[index]
        cap = sum(m.cap for m in moves)
        day_cap = sum(m.day_cap for m in moves)
        values = {
            ":a": _n(amount),
            ":cv": _n(record.config_version),
            ":cap": _n(shard.cap),
            ":room": _n(shard.cap + cap - amount),
            ":zero": _n(0),
            ":more": _n(cap),
        }
        expression = (
            "SET reserved = reserved + :a, held = held + :a, cap = cap + :more,"
            " matchedTotal = if_not_exists(matchedTotal, :zero) + :a"
        )
        condition = (
            "configVersion = :cv AND cap = :cap AND held <= :room AND attribute_not_exists(closed)"
        )
        if shard.day_cap is not None:
            expression += ", dayCap = dayCap + :dmore"
            condition += " AND dayCap = :dcap"
            values |= {":dcap": _n(shard.day_cap), ":dmore": _n(day_cap)}
        day_update = self._day_claim(line, amount, now, index)
        if shard.day_cap is not None:
            room = shard.day_cap + day_cap - amount
            day_update["ExpressionAttributeValues"][":dayroom"] = _n(room)
            if room < 0:  # no usage fits: an absent item must refuse too
                day_update["ConditionExpression"] = "used <= :dayroom"
        update = {
            "TableName": self.table,
            "Key": shard_key(line.line_id, index),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        return [{"Update": update}, {"Update": day_update}]

    def shard_moves(
        self, record: LineRecord, moves: Sequence[Move], days: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Room taken from each move's source shard, conditioned on its shares as read
        and on its counters fitting what is left of them (on each of `days`, for the
        daily share), so a move is exact however many claims run on the shard. The
        targets' writes are the caller's (a claim) or move_room's."""
        line_id = record.line.line_id
        items = []
        for move in moves:
            source = record.shards[move.source]
            values = {":cap": _n(source.cap), ":x": _n(move.cap)}
            expression = "SET cap = cap - :x"
            condition = "cap = :cap"
            if move.cap:
                condition += " AND held <= :left"
                values[":left"] = _n(source.cap - move.cap)
            if source.day_cap is not None:
                expression += ", dayCap = dayCap - :y"
                condition += " AND dayCap = :dcap"
                values |= {":dcap": _n(source.day_cap), ":y": _n(move.day_cap)}
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": shard_key(line_id, move.source),
                        "UpdateExpression": expression,
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
            if source.day_cap is not None and move.day_cap:
                left = source.day_cap - move.day_cap
                items += [
                    self._day_check(line_id, day, move.source, left, room_kept=True) for day in days
                ]
        return items

    def move_room(self, record: LineRecord, move: Move, days: Sequence[str]) -> bool:
        """One rebalancing move in one transaction: False when a condition refused it
        (the shares or counters moved since `record` was read; nothing written)."""
        values = {":x": _n(move.cap)}
        expression = "SET cap = cap + :x"
        if record.shards[move.target].day_cap is not None:
            expression += ", dayCap = dayCap + :y"
            values[":y"] = _n(move.day_cap)
        target = {
            "Update": {
                "TableName": self.table,
                "Key": shard_key(record.line.line_id, move.target),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(cap)",
                "ExpressionAttributeValues": values,
            }
        }
        items = [target, *self.shard_moves(record, [move], days)]
        return not transact(self.client, items, self.backoff)

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

    def _day_claim(
        self, line: Line, amount: int, now: datetime, shard: int | None = None
    ) -> dict[str, Any]:
        day = line.day_of(now)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": day_key(line.line_id, day, shard),
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

    def release_items(
        self, line_id: str, by_day: Mapping[str, int], shard: int | None = None
    ) -> list[dict[str, Any]]:
        """Reservations released: the line (the orders' shard of a sharded line) by
        their sum, each claim day by its part."""
        amount = sum(by_day.values())
        return [
            self._counter_update(
                line_id,
                "SET reserved = reserved - :a, held = held - :a",
                "reserved >= :a",
                {":a": _n(amount)},
                shard,
            ),
            *(
                self._day_give_back(line_id, day, part, shard)
                for day, part in sorted(by_day.items())
            ),
        ]

    def draw_items(
        self,
        line_id: str,
        reserved_amount: int,
        drawn_amount: int,
        claim_day: str | None = None,
        shard: int | None = None,
    ) -> list[dict[str, Any]]:
        """Mirrors Line.draw: the undrawn rest is freed on the line and on its claim day."""
        freed = reserved_amount - drawn_amount
        items = [
            self._counter_update(
                line_id,
                "SET reserved = reserved - :r, drawn = drawn + :d, held = held - :freed",
                "reserved >= :r",
                {":r": _n(reserved_amount), ":d": _n(drawn_amount), ":freed": _n(freed)},
                shard,
            )
        ]
        if claim_day is not None and freed > 0:
            items.append(self._day_give_back(line_id, claim_day, freed, shard))
        return items

    def late_draw_items(
        self,
        line_id: str,
        amount: int,
        claim_day: str | None,
        within: LineRecord | None,
        shard: int | None = None,
        *,
        close: bool = False,
    ) -> list[dict[str, Any]]:
        """Mirrors Line.draw_late. With `within` (the line as read, with room for the
        amount on the order's shard), only if the shard still has that room under that
        configuration (and share); without, unconditionally: the money is out, held
        may pass the limit."""
        condition, values = "", {":a": _n(amount)}
        if within is not None:
            room = within.shard(shard)
            condition = "configVersion = :cv AND held <= :room"
            values |= {":cv": _n(within.config_version), ":room": _n(room.cap - amount)}
            if within.shards:
                condition += " AND cap = :cap"
                values[":cap"] = _n(room.cap)
        expression = "SET drawn = drawn + :a, held = held + :a"
        if close:
            expression += ", closed = :a"
        items = [self._counter_update(line_id, expression, condition, values, shard)]
        if claim_day is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": day_key(line_id, claim_day, shard),
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
        self,
        items: list[dict[str, Any]],
        moves: Mapping[str, Mapping[OrderStatus, int]],
        shard: int | None = None,
    ) -> list[dict[str, Any]]:
        """`items` (a transaction's writes) with each line's order counts moved as
        `moves` (fundrouter.domain.lines.holding_moves) says: folded into the write of
        that line item where there is one (a transaction writes an item once), else a
        write of its own (APPROVED moves no capacity). ADD counts an absent count
        from 0. Counts are never conditions: they report, they guard nothing. On a
        sharded line they are the order's shard's (`shard`), summed when read."""
        items = list(items)
        for line_id, counts in moves.items():
            key = shard_key(line_id, shard)
            names = {f"#c{i}": count_attribute(status) for i, status in enumerate(counts)}
            values = {f":c{i}": _n(step) for i, step in enumerate(counts.values())}
            adding = " ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
            found = next(
                (i for i, item in enumerate(items) if item.get("Update", {}).get("Key") == key),
                None,
            )
            if found is None:
                items.append(self._counter_update(line_id, adding.strip(), "", values, shard))
                items[-1]["Update"]["ExpressionAttributeNames"] = names
                continue
            update = dict(items[found]["Update"])
            update["UpdateExpression"] += adding
            update["ExpressionAttributeNames"] = update.get("ExpressionAttributeNames", {}) | names
            update["ExpressionAttributeValues"] = update["ExpressionAttributeValues"] | values
            items[found] = {"Update": update}
        return items

    def _day_give_back(
        self, line_id: str, day: str, amount: int, shard: int | None = None
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": day_key(line_id, day, shard),
                "UpdateExpression": "SET used = used - :a",
                "ConditionExpression": "used >= :a",
                "ExpressionAttributeValues": {":a": _n(amount)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def restore_items(
        self, line_id: str, amount: int, shard: int | None = None
    ) -> list[dict[str, Any]]:
        return [
            self._counter_update(
                line_id,
                "SET drawn = drawn - :a, held = held - :a",
                "drawn >= :a",
                {":a": _n(amount)},
                shard,
            )
        ]

    def _counter_update(
        self,
        line_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        shard: int | None = None,
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": shard_key(line_id, shard),
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


def _shards_to_write(
    line_id: str, config: LineConfig, current: LineRecord | None, expected_version: int | None
) -> tuple[int, list[Shard], bool]:
    """The line's version, its shards as the new config will have them (new ones empty),
    and whether the currency changes (only while nothing is held)."""
    version = 0 if current is None else current.config_version
    if expected_version is not None and expected_version != version:
        raise StaleLineConfig(line_id)
    shards = list(current.shards) if current is not None else []
    if current is not None and not shards:
        shards = [current.shard(0)]
    recurrency = current is not None and current.line.config.currency != config.currency
    if recurrency and any(shard.held for shard in shards):
        raise LineCurrencyLocked(line_id)
    shards += [Shard(i, 0) for i in range(len(shards), max(len(shards), config.shards))]
    return version, shards, recurrency


def _every_shard(
    line_id: str, config: LineConfig, version: int, now: datetime, short: bool
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The values, SETs and REMOVEs a config write makes on every shard."""
    values: dict[str, Any] = {
        ":v": _n(version),
        ":zero": _n(0),
        ":now": _s(format_timestamp(now)),
        ":id": _s(line_id),
    }
    sets = ["configVersion = :v", "updatedAt = :now", "lineId = :id"]
    # Counters present on every shard; a new one starts empty.
    sets += [f"{c} = if_not_exists({c}, :zero)" for c in ("reserved", "drawn", "held")]
    removes = ["dayCap"] if config.daily_limit is None else []
    # Claims stop on every shard of a short line until it has room again.
    (sets if short else removes).append("closed = :v" if short else "closed")
    return values, sets, removes


def _line_item_part(
    config: LineConfig,
    current: LineRecord | None,
    count: int,
    *,
    sets: list[str],
    values: dict[str, Any],
    conditions: list[str],
) -> None:
    """What only the line item (shard 0) of a sharded line is written and conditioned on."""
    sets += [
        "config = :config",
        "shardItems = :count",
        "kind = :kind",
        "createdAt = if_not_exists(createdAt, :now)",
    ]
    values |= {
        ":config": to_item({"c": config_values(config)})["c"],
        ":count": _n(count),
        ":kind": _s(LINE_SK),
    }
    if current is None:
        conditions.append("attribute_not_exists(configVersion)")
    else:
        conditions.append("configVersion = :read")
        values[":read"] = _n(current.config_version)


def config_values(config: LineConfig) -> dict[str, Any]:
    """The configuration as stored: K = 1 is left out, so an unsharded line's item is
    what it was before shards existed."""
    values = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    if values.get("shards") == 1:
        del values["shards"]
    return values


def _targets(
    config: LineConfig, shards: list[Shard], day: str
) -> tuple[list[int], list[int | None], bool]:
    """Each shard's share of the limit and of the daily cap (None without one), and
    whether the line is short (holds more than its limit, or used more than its cap
    on `day`)."""
    held = [s.held for s in shards]
    caps = _shares(config.limit, held, config.shards)
    short = sum(held) > config.limit
    if config.daily_limit is None:
        return caps, [None] * len(shards), short
    used = [s.daily_used.get(day, 0) for s in shards]
    day_caps: list[int | None] = list(_shares(config.daily_limit, used, config.shards))
    return caps, day_caps, short or sum(used) > config.daily_limit


def _shares(total: int, held: list[int], active: int) -> list[int]:
    """Shares of `total` over shards holding `held`: each what it holds plus an even
    part of the room left on the first `active` (removed shards keep what they hold);
    with less than is held, the shortfall on shard 0 and no room on any."""
    room = total - sum(held)
    if room < 0:
        return [held[0] + room, *held[1:]]
    parts = split(room, active) + [0] * (len(held) - active)
    return [h + p for h, p in zip(held, parts, strict=True)]


def _shard_day_usage(items: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """Day items' usage by shard (the shard is in the key: ``...#S#{i}#DAY#...``)."""
    usage: dict[int, dict[str, int]] = {}
    for item in items:
        if item["sk"]["S"] != DAY_SK or "used" not in item:
            continue
        head = item["pk"]["S"].rpartition("#DAY#")[0]
        shard = int(head.rpartition("#S#")[2]) if "#S#" in head else 0
        usage.setdefault(shard, {})[item["day"]["S"]] = int(item["used"]["N"])
    return usage


def _day_usage(items: list[dict[str, Any]]) -> dict[str, int]:
    return {
        item["day"]["S"]: int(item["used"]["N"])
        for item in items
        if item["sk"]["S"] == DAY_SK and "used" in item
    }
