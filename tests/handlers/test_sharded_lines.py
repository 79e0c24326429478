"""Sharded capacity on moto (decision 31): a line's limit and daily cap spread over K
shard items; claims alone and in groups decide every order as on one item, an order
that fits the line but no shard is still matched, K changes while orders hold the
line, and the reconciler's rebalance moves room between shards exactly."""

import json
import random
from typing import Any

import pytest
from fundrouter.domain.lifecycle import EventType
from fundrouter.domain.lines import LineConfig, LineRecord, Move, suggested_shards
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import order_from_item
from fundrouter.service.matching import LineCatalog, MatchOutcome, MatchService

import tests.support.world as world_module
from tests.support.aws import scan_all
from tests.support.events import load_event
from tests.support.moto_speed import speed_up_moto
from tests.support.orders import Paths
from tests.support.world import NO_WAIT, TENANT, World

LINE = "bank-a-consumer"


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    speed_up_moto(monkeypatch)
    return World(orders_table)


def reshard(world: World, shards: int, **changes: Any) -> LineRecord:
    record = world.lines.get(LINE)
    assert record is not None
    config = LineConfig.model_validate(
        record.line.config.model_dump(by_alias=True) | changes | {"shards": shards}
    )
    world.lines.put_config(LINE, config, world.clock())
    again = world.lines.get(LINE)
    assert again is not None
    return again


def submit(
    world: World, count: int, seed: int, low: int = 100_000, high: int = 400_000
) -> list[Order]:
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        event = load_event("api/submit_order.json")
        body = json.loads(event["body"]) | {
            "orderId": f"s{seed}-{n:03d}",
            "amount": rng.randrange(low, high),
        }
        assert world.call(event | {"body": json.dumps(body)})[0] == 202
        order = world.orders.get(TENANT, body["orderId"])
        assert order is not None
        orders.append(order)
    return orders


def matcher(world: World) -> MatchService:
    store = DynamoMatchStore(world.client, world.orders_table, world.lines, NO_WAIT)
    return MatchService(LineCatalog(world.lines, ttl_seconds=3600), store, world.clock)


def assert_shards_exact(world: World) -> None:
    """Every shard holds exactly what the orders on it hold, never more than its
    share, and the shares sum to the line's limit and daily cap."""
    world.assert_invariant()
    record = world.lines.get(LINE)
    assert record is not None
    assert record.shards
    orders = [
        order_from_item(item)
        for item in scan_all(world.client, world.orders_table)
        if item["sk"]["S"] == "ORDER"
    ]
    for shard in record.shards:
        holding = [o for o in orders if o.line_id == LINE and (o.shard or 0) == shard.index]
        reserved = sum(
            o.reserved for o in holding if o.status in {OrderStatus.MATCHED, OrderStatus.APPROVED}
        )
        assert shard.reserved == reserved, shard
        assert shard.held <= shard.cap, shard
    config = record.line.config
    assert sum(s.cap for s in record.shards) == config.limit
    if config.daily_limit is not None:
        assert sum(s.day_cap or 0 for s in record.shards) == config.daily_limit


def outcome(world: World, orders: list[Order]) -> dict[str, Any]:
    stored = [world.orders.get(TENANT, o.order_id) for o in orders]
    decided = {o.order_id: (o.status, o.line_id, o.reserved, o.decision) for o in stored if o}
    lines = {r.line.line_id: (r.line.counters, r.orders) for r in world.lines.list_lines()}
    return {"orders": decided, "lines": lines}


@pytest.mark.parametrize("seed", [1])
def test_a_sharded_line_decides_every_order_alike_alone_and_in_groups(
    orders_table: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    speed_up_moto(monkeypatch)
    results = {}
    for mode in ("alone", "together"):
        monkeypatch.setattr(world_module, "LINES_TABLE", f"lines-{mode}")
        world = World(f"{orders_table}-{mode}" if mode == "together" else orders_table)
        if mode == "together":
            world.client.create_table(
                **world_module.create_table_kwargs("OrdersTable", world.orders_table)
            )
        # Four shards of 2.5 million and a daily cap of 6 million (1.5 each): orders
        # fill shards unevenly, some fit the line but no shard alone.
        reshard(world, 4, dailyLimit=6_000_000)
        orders = submit(world, 40, seed)
        service, sent = matcher(world), world.transactions()
        for start in range(0, len(orders), 10):
            batch = orders[start : start + 10]
            with service.batch():
                if mode == "alone":
                    reports = [service.match(order) for order in batch]
                else:
                    reports = [r for r in service.match_all(batch) if not isinstance(r, Exception)]
            assert len(reports) == len(batch)
        assert_shards_exact(world)
        results[mode] = outcome(world, orders)
        # Some claims took room from other shards (the line had it, no shard alone).
        assert any("cap = cap - :x" in json.dumps(items) for items in sent)
    assert results["together"] == results["alone"]
    lines = {line for _, line, *_ in results["alone"]["orders"].values()}
    assert lines == {LINE, "trust-b"}  # the first line's daily cap was reached


def test_an_order_that_fits_the_line_but_no_shard_is_matched_on_one_shard(world: World) -> None:
    reshard(world, 4, limit=1_000_000)  # 250,000 a shard
    (order,) = submit(world, 1, seed=3, low=600_000, high=600_001)

    report = world.matcher.match(order)

    assert report.outcome is MatchOutcome.MATCHED
    assert report.line_id == LINE
    stored = world.orders.get(TENANT, order.order_id)
    assert stored is not None
    assert stored.shard is not None
    record = world.lines.get(LINE)
    assert record is not None
    assert record.shards[stored.shard].cap >= 600_000
    assert_shards_exact(world)


def test_k_grows_and_shrinks_while_orders_hold_the_line(world: World) -> None:
    first = submit(world, 6, seed=4)
    for order in first:
        world.matcher.match(order)
    reshard(world, 4)  # from one item: its holdings stay on shard 0
    assert_shards_exact(world)
    second = submit(world, 8, seed=5)
    for order in second:
        world.matcher.match(order)
    assert_shards_exact(world)
    record = reshard(world, 2)  # shards 2 and 3 drain: they keep what they hold
    assert [s.room for s in record.shards[2:]] == [0, 0]
    assert_shards_exact(world)
    stored = [world.orders.get(TENANT, o.order_id) for o in second]
    removed = [o for o in stored if o is not None and (o.shard or 0) >= 2]
    assert removed  # the hash spread the second orders over all four shards
    paths = Paths(world.client, world.orders_table, world.lines)
    for order in removed:
        paths.event(order, EventType.CANCELLED, world.clock())
    released = world.lines.get(LINE)
    assert released is not None
    assert sum(s.room for s in released.shards[2:]) > 0
    report = world.reconciler.run()  # the rebalance moves the removed shards' room back
    assert report.rebalanced[LINE] >= 2
    assert not report.failures
    assert report.lines_audited == 2
    assert report.drift == []
    drained = world.lines.get(LINE)
    assert drained is not None
    assert [s.room for s in drained.shards[2:]] == [0, 0]
    assert drained.line.available == released.line.available
    assert_shards_exact(world)
    third = submit(world, 4, seed=6)
    for order in third:
        world.matcher.match(order)
    stored = [world.orders.get(TENANT, o.order_id) for o in third]
    assert all(o is not None and (o.shard or 0) < 2 for o in stored)
    assert_shards_exact(world)


def test_a_move_refused_when_a_claim_changed_its_source_writes_nothing(world: World) -> None:
    record = reshard(world, 2, limit=1_000_000)
    (order,) = submit(world, 1, seed=8, low=400_000, high=400_001)
    world.matcher.match(order)
    stored = world.orders.get(TENANT, order.order_id)
    assert stored is not None
    source = stored.shard or 0
    before = world.everything()

    # Planned on the line as read before the claim: the source no longer has it.
    taken = world.lines.move_room(record, Move(source, 1 - source, cap=300_000), [])

    assert not taken
    assert world.everything() == before
    assert_shards_exact(world)


def test_the_line_view_suggests_k_from_the_claim_rate_the_reconciler_measured(
    world: World,
) -> None:
    world.reconciler.run()  # the first sample
    orders = submit(world, 10, seed=9)
    for order in orders:
        world.matcher.match(order)

    world.reconciler.run()  # the rate since the first

    state = world.client.get_item(
        TableName=world_module.LINES_TABLE, Key={"pk": {"S": f"AUDIT#{LINE}"}, "sk": {"S": "AUDIT"}}
    )["Item"]
    status, body = world.call("get_line")
    assert status == 200
    assert body["claimsPerMinute"] == int(state["claimsPerMinute"]["N"]) > 0
    assert body["suggestedShards"] == 1
    listed = world.call("list_lines")[1]["items"]
    assert {item["claimsPerMinute"] for item in listed} == {None}


@pytest.mark.parametrize(
    ("per_minute", "k"), [(0, 1), (60_000, 1), (60_001, 2), (600_000, 10), (10**9, 32)]
)
def test_k_keeps_each_shard_under_a_thousand_claims_a_second(per_minute: int, k: int) -> None:
    assert suggested_shards(per_minute) == k


def test_patch_changes_k_through_the_api_and_the_view_sums_the_shards(world: World) -> None:
    for order in submit(world, 4, seed=10):
        world.matcher.match(order)
    before = world.call("get_line")[1]
    patch = load_event("api/patch_line_pause.json") | {"body": json.dumps({"shards": 3})}

    status, body = world.call(patch)

    assert status == 200
    assert body["shards"] == 3
    after = world.call("get_line")[1]
    kept = ("reserved", "drawn", "available", "usedToday", "orders", "limit")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert (
        world.call(load_event("api/patch_line_pause.json") | {"body": '{"shards": 33}'})[0] == 422
    )
    assert_shards_exact(world)
