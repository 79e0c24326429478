"""Section 7: the capacity model (docs/capacity.md): orders/s before any partition
passes DynamoDB's 1,000 WCU/s. (1) On moto, one order's life through the product's
code; every write and the items before and after, read back: ceil(KB) WCU of the
larger image (twice in a transaction; a ConditionCheck as a write). (2) From
template.yaml, every GSI's keys and projection: an unchanged entry costs nothing,
changed projected attributes one write, a moved key a delete and a put; an entry is
its attributes plus 100 B. (3) The order's images re-keyed by ``order_item`` for
SAMPLE orders of one tenant on one line: WCU per order on the busiest key of each
table and index, and the rate at which it reaches 1,000 WCU/s; a key naming the line
is per line, the tenant per tenant, the order per order, anything else system-wide.
tests/unit/test_capacity.py holds the template to the goals; `make bench` section 7
(bench/capacity.py) prints the figures."""

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import boto3
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_item
from moto import mock_aws

from tests.support.requests import Answers
from tests.support.template import create_table_kwargs, resources
from tests.support.world import LINES_TABLE, ORDER_ID, TENANT, World

ORDERS_TABLE = "fundrouter-capacity-orders"
LINE = "bank-a-consumer"  # the line the lifecycle events name
LIFE = (
    "submit_order",
    "match",
    "order_event_approved",
    "order_event_disbursed_partly",
    "order_event_repaid_part",
    "order_event_repaid_rest",
)
PARTITION_WCU = 1000
KB = 1024
INDEX_ENTRY_OVERHEAD = 100
SAMPLE = 4_000
GOALS = {"system": 5_000, "tenant": 1_000}


@dataclass(frozen=True)
class Index:
    table: str  # logical id
    name: str | None  # None: the table itself
    keys: tuple[str, ...]
    projection: str
    include: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return self.table if self.name is None else f"{self.table}.{self.name}"

    def entry(self, image: dict[str, Any] | None, table_keys: tuple[str, ...]) -> Any:
        if image is None or any(key not in image for key in self.keys):
            return None  # sparse: not in the index
        if self.projection == "ALL":
            return image
        names = set(table_keys) | set(self.keys) | self.include
        return {name: value for name, value in image.items() if name in names}


def indexes(names: tuple[str, ...] = ("OrdersTable", "LinesTable")) -> list[Index]:
    """Every table and GSI of the template, with its keys and projection."""
    found = []
    for table_id in names:
        props = resources()[table_id]["Properties"]
        found.append(
            Index(table_id, None, tuple(k["AttributeName"] for k in props["KeySchema"]), "ALL")
        )
        for gsi in props.get("GlobalSecondaryIndexes", []):
            keys = tuple(k["AttributeName"] for k in gsi["KeySchema"])
            projection = gsi["Projection"]
            included = frozenset(projection.get("NonKeyAttributes", []))
            found.append(
                Index(table_id, gsi["IndexName"], keys, projection["ProjectionType"], included)
            )
    return found


class Change(NamedTuple):
    """One item's write in one step of the order's life."""

    table: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    transactional: bool


def targets(operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(table, how, key) of every item a write request touches."""
    if operation == "TransactWriteItems":
        for entry in params["TransactItems"]:
            (kind, action), = entry.items()  # fmt: skip
            key = action.get("Key") or {n: action["Item"][n] for n in ("pk", "sk")}
            yield action["TableName"], f"transact-{kind}", key
    elif operation in {"PutItem", "UpdateItem", "DeleteItem"}:
        key = params.get("Key") or {n: params["Item"][n] for n in ("pk", "sk")}
        yield params["TableName"], operation, key


def measure() -> list[list[Change]]:
    """One order's life on moto (tests/support/world.py: the API handler and the matcher
    over template.yaml's tables): per step, every item written, before and after."""
    with mock_aws():
        boto3.client("dynamodb").create_table(**create_table_kwargs("OrdersTable", ORDERS_TABLE))
        world = World(ORDERS_TABLE)
        client, calls = world.client, Answers(world.client)
        tables = {ORDERS_TABLE: "OrdersTable", LINES_TABLE: "LinesTable"}
        images = {(t, key_of(i)): i for t in tables for i in client.scan(TableName=t)["Items"]}
        steps = []
        for step in LIFE:
            calls.reset()
            if step == "match":
                world.match()
            elif (status := world.respond(step)["statusCode"]) >= 300:
                raise SystemExit(f"capacity model: {step} answered {status}")
            written = dict.fromkeys(
                (t, key_of(k), how)
                for name, params, parsed in calls.calls
                if "Error" not in parsed
                for t, how, k in targets(name, params)
            )
            changes = []
            for name, key, how in written:
                item = client.get_item(TableName=name, Key=json.loads(key), ConsistentRead=True)
                new = item.get("Item")
                changes.append(
                    Change(tables[name], images.get((name, key)), new, "transact" in how)
                )
                images[(name, key)] = new
            steps.append(changes)
        return steps


def key_of(item: dict[str, Any]) -> str:
    return json.dumps({"pk": item["pk"], "sk": item["sk"]}, sort_keys=True)


def units(size: int) -> int:
    return max(1, math.ceil(size / KB))


@dataclass
class Partition:
    """The busiest partition key of a table or index."""

    index: Index
    scope: str  # system, tenant, line, order
    key: str
    wcu_per_order: float
    total_per_order: float  # over all its partitions: what the table's quota sees

    @property
    def ceiling(self) -> float:
        if self.scope == "order" or self.wcu_per_order == 0:
            return math.inf  # one order's own key: no rate of orders adds to it
        return PARTITION_WCU / self.wcu_per_order


def scope(key: str, keys: int, sample: int) -> str:
    if LINE in key:
        return "line"
    if keys >= sample:
        return "order"  # as many keys as orders: each its own
    return "tenant" if TENANT in key else "system"


def rekeyer(change: Change) -> Any:
    """The same Orders item for another order of the same tenant, by number: an order
    item by the product's own keys (of the order without its bulky, keyless fields);
    the order's other items by its partition key."""
    if change.table != "OrdersTable":
        return lambda image, _: image
    orders = {}
    for image in (change.old, change.new):
        if image is not None and image["sk"]["S"] == ORDER_SK:
            order = order_from_item(image)
            orders[id(image)] = order.model_copy(update={"history": [], "decision": None})

    def rekeyed(image: dict[str, Any] | None, number: int) -> dict[str, Any] | None:
        order_id = f"o-{number:07d}"
        if image is None:
            return None
        if id(image) in orders:
            return order_item(orders[id(image)].model_copy(update={"order_id": order_id}))
        return image | {"pk": {"S": image["pk"]["S"].replace(ORDER_ID, order_id)}}

    return rekeyed


def busiest(steps: list[list[Change]], sample: int = SAMPLE) -> list[Partition]:
    """WCU per order on the busiest partition key of every table and index, with
    `sample` orders of one tenant on one line. What each write costs comes from the
    measured items; only where it lands is worked out per order."""
    all_indexes = indexes()
    table_keys = {i.table: i.keys for i in all_indexes if i.name is None}
    load: dict[Index, Counter[str]] = defaultdict(Counter)
    plans = [
        (change, rekeyer(change), [
            (index, list(index_writes(index, table_keys[index.table], change)))
            for index in all_indexes
            if index.table == change.table
        ])
        for change in (c for step in steps for c in step)
    ]  # fmt: skip
    for number in range(sample):
        for change, rekeyed, writes in plans:
            images = {"old": rekeyed(change.old, number), "new": rekeyed(change.new, number)}
            for index, costs in writes:
                for role, cost in costs:
                    load[index][images[role][index.keys[0]]["S"]] += cost  # type: ignore[index]
    found = []
    for index in all_indexes:
        counts = load[index]
        key, wcu = counts.most_common(1)[0] if counts else ("-", 0)
        where = scope(key, len(counts), sample)
        # An order's own key: what that one order writes there over its life.
        per_order = wcu if where == "order" else wcu / sample
        found.append(Partition(index, where, key, per_order, sum(counts.values()) / sample))
    return found


def index_writes(
    index: Index, table_keys: tuple[str, ...], change: Change
) -> Iterator[tuple[str, int]]:
    """(image whose key it lands on, WCU) of what one base write costs the table or index."""
    old, new = change.old, change.new
    if index.name is None:
        size = max(item_size(old or {}), item_size(new or {}))
        yield ("new" if new else "old"), units(size) * (2 if change.transactional else 1)
        return
    before, after = index.entry(old, table_keys), index.entry(new, table_keys)
    if before == after:
        return
    moved = before is None or after is None or any(before[k] != after[k] for k in index.keys)
    if moved and before is not None:
        yield "old", units(item_size(before) + INDEX_ENTRY_OVERHEAD)
    if after is not None:
        yield "new", units(item_size(after) + INDEX_ENTRY_OVERHEAD)


class Ceilings(NamedTuple):
    system: float  # orders/s before a partition shared by every order passes 1,000 WCU/s
    tenant: float  # ... for one tenant's orders
    line: float  # ... for one line's orders


def model(sample: int = SAMPLE) -> tuple[list[Partition], Ceilings]:
    partitions = busiest(measure(), sample)

    def lowest(*scopes: str) -> float:
        return min((p.ceiling for p in partitions if p.scope in scopes), default=math.inf)

    # A tenant's orders also load what every order shares; one line's, both.
    return partitions, Ceilings(
        lowest("system"), lowest("tenant", "system"), lowest("line", "tenant", "system")
    )
