"""The simulation of DynamoDB's limits (sim/): the model holds what DynamoDB holds, and
the real matcher on it never over-allocates. Small seeded runs, a few seconds."""

import random
from collections import Counter
from dataclasses import replace
from functools import partial

import pytest
from fundrouter.domain.orders import Decision, OrderStatus
from fundrouter.service.ports import ClaimResult

from sim.dynamodb_limits import Dynamo, Scheduler, Write, write_units
from sim.hot_line import Model, SimStore, new_order, simulate

TINY = Model(offered=1_500, warmup=0.2, measure=0.6, workers=6, batch=10)


def hammer(keys: list[str], seconds: float, hold: float = 0.0) -> Dynamo:
    """5 clients each writing one of `keys` in a transaction every millisecond:
    5,000 a second, 10,000 WCU demanded."""
    clock = Scheduler()
    dynamo = Dynamo(clock, {"t": 1}, hold=lambda _: hold)

    def client(key: str) -> None:
        while True:
            dynamo.transact([Write(("t", key, "s"), 900)])
            clock.wait(0.001)

    for n in range(5):
        clock.spawn(partial(client, keys[n % len(keys)]))
    clock.run(seconds)
    return dynamo


def per_item(dynamo: Dynamo) -> Counter[str]:
    return Counter({key[1]: units for (key, _), units in dynamo.item_wcu.items()})


@pytest.mark.parametrize("hold", [0.0, 0.003])  # with a hold, cancellations are billed too
def test_one_item_never_gets_more_than_1000_wcu_a_second_however_hot(hold: float) -> None:
    dynamo = hammer(["hot"], 2.0, hold)
    seconds = [units for (_, second), units in dynamo.item_wcu.items() if second < 2]
    assert max(seconds) <= 1_000  # 500 transactions of 2 WCU at most
    assert min(seconds) >= 998  # it was saturated
    assert dynamo.counts["ThrottlingError"] > 5_000
    assert dynamo.counts.get("splits:t", 0) == 0  # one item is never split


def test_adaptive_capacity_splits_two_hot_items_apart_but_each_stays_at_1000() -> None:
    dynamo = hammer(["a", "b"], 2.0)
    assert dynamo.counts["splits:t"] == 1
    last = {key[1]: units for (key, second), units in dynamo.item_wcu.items() if second == 1}
    assert 1_000 < sum(last.values()) <= 2_000  # two partitions now
    assert max(last.values()) <= 1_000


def test_a_transactional_write_costs_twice_a_standard_one_and_a_refusal_once() -> None:
    assert write_units(1_500, transactional=False) == 2
    assert write_units(1_500, transactional=True) == 4
    dynamo = Dynamo(Scheduler(), {"t": 1}, hold=lambda _: 0.0)
    assert dynamo.transact([Write(("t", "k", "s"), 1_500)]) == []
    assert dynamo.transact([Write(("t", "k", "s"), 1_500, check=lambda: False)]) == [
        "ConditionalCheckFailed"
    ]
    assert dynamo.parts["t"][0].wcu == 4 + 2  # committed twice, refused once


def test_two_transactions_on_one_item_at_once_one_is_cancelled_not_queued() -> None:
    clock = Scheduler()
    dynamo = Dynamo(clock, {"t": 4}, hold=lambda _: 0.01)
    applied: list[str] = []
    answers: list[list[str | None]] = []

    def client(name: str, other: str, pause: float) -> None:
        item = Write(("t", "line", "LINE"), 200, apply=lambda: applied.append(name))
        answers.append(dynamo.transact([Write(("t", other, "ORDER"), 200), item]))
        clock.wait(pause)
        answers.append(dynamo.transact([item]))  # the hold is over: it goes through

    clock.spawn(lambda: client("first", "o-1", 0.02))
    clock.spawn(lambda: client("second", "o-2", 0.04))
    clock.run(1.0)
    assert answers[:2] == [[], [None, "TransactionConflict"]]
    assert answers[2:] == [[], []]
    assert applied == ["first", "first", "second"]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize(("limit", "daily_limit"), [(300_000_000, None), (10**12, 200_000_000)])
def test_claims_never_over_allocate_a_shard_or_the_line(
    grouped: bool, limit: int, daily_limit: int | None
) -> None:
    model = replace(TINY, limit=limit, daily_limit=daily_limit)
    figures, store = simulate(model, 4, grouped=grouped)
    matched = [o for o in store.orders.values() if o.status is OrderStatus.MATCHED]
    assert sum(store.reserved) == sum(o.amount for o in matched) > 0
    assert store.matched_total == sum(store.reserved) <= limit
    # Every shard within its share, the shares (moved by claims the line fits but no
    # shard alone does) summing to the limit and the daily cap.
    assert all(r <= cap for r, cap in zip(store.reserved, store.caps, strict=True))
    assert sum(store.caps) == limit
    assert sum(store.used.values()) == sum(store.reserved)
    if store.day_caps is not None:
        assert sum(store.day_caps) == daily_limit
        assert all(used <= store.day_caps[shard] for (shard, _), used in store.used.items())
    # The limit (or the daily cap) was reached: orders were refused, so it was exercised.
    assert any(o.status is OrderStatus.UNMATCHED for o in store.orders.values())
    assert figures.claims_per_second > 0


def test_the_same_seed_gives_the_same_figures() -> None:
    first, _ = simulate(TINY, 2, grouped=True)
    again, _ = simulate(TINY, 2, grouped=True)
    other, _ = simulate(replace(TINY, seed=8), 2, grouped=True)
    assert first == again
    assert first != other


def test_a_redelivered_order_is_not_claimed_twice_and_is_not_marked_unmatched() -> None:
    clock = Scheduler()
    store = SimStore(TINY, 2, clock, random.Random(7))
    order = store.orders["o-0000001"] = new_order(1, 0.0, 1_000_000)
    decision = Decision(strategy="PRIORITY", candidates=[])
    answers: list[object] = []

    def deliveries() -> None:
        record, now = store.record(), store.now()
        for _ in range(2):  # the same stream record, delivered twice
            answers.append(store.claim(order, record, now, now, decision).result)
        answers.append(store.mark_unmatched(order, now, decision))

    clock.spawn(deliveries)
    clock.run(5.0)
    assert answers == [ClaimResult.CLAIMED, ClaimResult.ORDER_MOVED, False]
    assert sum(store.reserved) == 1_000_000
    assert store.orders["o-0000001"].status is OrderStatus.MATCHED
