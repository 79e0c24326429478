"""Group commit in the matcher, on moto: a stream batch's consecutive orders that choose
the same line first are claimed in one transaction, and every order's decision is the
one it gets when the batch is matched one order at a time."""

import json
import random
from typing import Any

import pytest
from fundrouter.domain.errors import Contended, Unavailable
from fundrouter.domain.orders import Order
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.service.matching import LineCatalog, MatchOutcome, MatchService

import tests.support.world as world_module
from tests.support.events import load_event
from tests.support.faults import Injected, always, conflict
from tests.support.moto_speed import speed_up_moto
from tests.support.world import NO_WAIT, TENANT, World

BATCH = 10  # records per stream batch, as the template's mapping delivers them


def submit(world: World, count: int, seed: int) -> list[str]:
    """Seeded orders: about 15 million in all, so the first line (10 million) fills
    part way and the rest go on to the second."""
    rng = random.Random(seed)
    order_ids = [f"g-{n:03d}" for n in range(count)]
    for order_id in order_ids:
        event = load_event("api/submit_order.json")
        body = json.loads(event["body"]) | {
            "orderId": order_id,
            "amount": rng.randrange(100_000, 400_000),
        }
        assert world.call(event | {"body": json.dumps(body)})[0] == 202
    return order_ids


def matcher(world: World) -> MatchService:
    """The container's service: the catalog read once and kept for the whole run."""
    store = DynamoMatchStore(world.client, world.orders_table, world.lines, NO_WAIT)
    return MatchService(LineCatalog(world.lines, ttl_seconds=3600), store, world.clock)


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    speed_up_moto(monkeypatch)
    return World(orders_table)


def stored(world: World, count: int, seed: int) -> list[Order]:
    """Seeded orders as intake stored them, RECEIVED."""
    read = [world.orders.get(TENANT, order_id) for order_id in submit(world, count, seed)]
    return [order for order in read if order is not None]


def outcome(world: World, order_ids: list[str]) -> dict[str, Any]:
    """What the business sees: each order's status, line, reservation and decision,
    and each line's counters and counts."""
    orders = {}
    for order_id in order_ids:
        order = world.orders.get(TENANT, order_id)
        assert order is not None
        assert order.decision is not None
        orders[order_id] = (order.status, order.line_id, order.reserved, order.decision)
    lines = {r.line.line_id: (r.line.counters, r.orders) for r in world.lines.list_lines()}
    return {"orders": orders, "lines": lines}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_claimed_in_groups_decides_every_order_as_one_at_a_time_would(
    orders_table: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    speed_up_moto(monkeypatch)
    worlds = {}
    for mode in ("alone", "together"):
        monkeypatch.setattr(world_module, "LINES_TABLE", f"lines-{mode}")
        world = World(f"{orders_table}-{mode}" if mode == "together" else orders_table)
        if mode == "together":
            world.client.create_table(
                **world_module.create_table_kwargs("OrdersTable", world.orders_table)
            )
        order_ids = submit(world, 60, seed)
        service, sent = matcher(world), world.transactions()
        for start in range(0, len(order_ids), BATCH):
            batch = [world.orders.get(TENANT, i) for i in order_ids[start : start + BATCH]]
            orders = [order for order in batch if order is not None]
            with service.batch():
                if mode == "alone":
                    reports = [service.match(order) for order in orders]
                else:
                    reports = [r for r in service.match_all(orders) if not isinstance(r, Exception)]
            assert len(reports) == len(orders)
            assert all(r.outcome is not MatchOutcome.ALREADY_HANDLED for r in reports)
        world.assert_invariant()
        worlds[mode] = (outcome(world, order_ids), [len(items) for items in sent])

    (alone, alone_sent), (together, together_sent) = worlds["alone"], worlds["together"]
    assert together == alone
    # Claims of up to 10 orders in one transaction of 12 items while the first line
    # has room; the batch that does not fit is claimed one order at a time.
    assert max(together_sent) == 2 + BATCH
    assert len(together_sent) < len(alone_sent)


def test_an_order_that_moved_is_left_out_and_the_rest_claimed_together(world: World) -> None:
    orders = stored(world, 5, seed=7)
    world.matcher.match(orders[2])  # another delivery decided it meanwhile
    service, sent = matcher(world), world.transactions()

    with service.batch():
        reports = service.match_all(orders)

    outcomes = [r.outcome for r in reports if not isinstance(r, Exception)]
    assert (
        outcomes
        == [MatchOutcome.MATCHED] * 2 + [MatchOutcome.ALREADY_HANDLED] + [MatchOutcome.MATCHED] * 2
    )
    assert [len(items) for items in sent] == [
        7,
        6,
    ]  # refused for the moved order, then the four others
    world.assert_invariant()


def test_a_line_with_room_for_the_first_orders_of_a_run_claims_those_together(world: World) -> None:
    orders = stored(world, 6, seed=7)
    first = world.lines.get("bank-a-consumer")
    assert first is not None
    # Room for the first three and not the fourth (nor any later, each >= 100,000).
    room = sum(order.amount for order in orders[:3]) + 99_999
    world.lines.put_config(
        "bank-a-consumer", first.line.config.model_copy(update={"limit": room}), world.clock()
    )
    service, sent = matcher(world), world.transactions()

    with service.batch():
        reports = service.match_all(orders)

    assert [r.line_id for r in reports if not isinstance(r, Exception)] == (
        ["bank-a-consumer"] * 3 + ["trust-b"] * 3
    )
    # The run of six refused for room, its first three claimed together, then each of
    # the others alone: refused by the first line and claimed on the second.
    assert [len(items) for items in sent] == [8, 5, 3, 3, 3, 3, 3, 3]
    world.assert_invariant()


def test_a_run_whose_line_stays_contended_fails_whole_without_a_claim_each(world: World) -> None:
    orders = stored(world, 4, seed=3)
    before = world.everything()
    Injected(world.client, "TransactWriteItems", always(conflict(6)))  # 4 orders + line + day
    service, sent = matcher(world), world.transactions()

    with service.batch():
        reports = service.match_all(orders)

    assert all(isinstance(report, Contended) for report in reports)
    # Only the group's transaction, retried: no order tried alone against the same line.
    assert {len(items) for items in sent} == {6}
    assert world.everything() == before


def test_an_order_delivered_twice_in_a_batch_is_claimed_once(world: World) -> None:
    orders = stored(world, 3, seed=5)
    service = matcher(world)

    with service.batch():
        reports = service.match_all([orders[0], orders[1], orders[1], orders[2]])

    outcomes = [r.outcome for r in reports if not isinstance(r, Exception)]
    assert outcomes == [
        MatchOutcome.MATCHED,
        MatchOutcome.MATCHED,
        MatchOutcome.ALREADY_HANDLED,
        MatchOutcome.MATCHED,
    ]
    world.assert_invariant()


def test_an_order_whose_ranking_fails_fails_alone_and_the_others_are_claimed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = stored(world, 3, seed=9)
    other = orders[1].model_copy(update={"tenant_id": "tenant-routing-down"})
    assert world.orders.add(other) is None
    service = matcher(world)
    catalog_routing = LineCatalog.routing

    def routing(catalog: LineCatalog, tenant_id: str) -> Any:
        if tenant_id == other.tenant_id:
            raise Unavailable("routing policy unreadable")
        return catalog_routing(catalog, tenant_id)

    monkeypatch.setattr(LineCatalog, "routing", routing)

    with service.batch():
        reports = service.match_all([orders[0], other, orders[1], orders[2]])

    assert isinstance(reports[1], Unavailable)
    outcomes = [r.outcome for r in reports if not isinstance(r, Exception)]
    assert outcomes == [MatchOutcome.MATCHED] * 3
    world.assert_invariant()
