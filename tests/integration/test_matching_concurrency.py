"""Concurrent claims on a real server. moto's transactions over-allocate when threads
race, so this runs against the DynamoDB of the local stack (ministack): 16 threads
insert orders and race the deployed MatcherFunction (fed by the table's stream) to
match them. Afterwards no line lends more than its limit, each line's `reserved` is
exactly the sum of its MATCHED orders, and every order is MATCHED or UNMATCHED; on a
sharded line, each shard's too, within its share."""

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Final

import pytest
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.matching import LineCatalog, MatchService

from tests.support.factories import line_body, order_request
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

THREADS = 16


# A line of 1,000,000 that takes any order up to all of it, held an hour.
CONCURRENCY_LINE: Final = {
    "name": "concurrency line",
    "limit": 1_000_000,
    "maxAmount": 1_000_000,
    "aprBps": 1000,
    "holdSeconds": 3600,
}


def new_orders(tenant: str, product: str, count: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        Order.received(
            tenant,
            order_request(
                orderId=f"conc-{n:03d}",
                amount=rng.choice([30_000, 50_000, 70_000, 110_000]),
                product=product,
                customer={"id": f"c-{n}"},
                metadata={},
            ),
            now,
        )
        for n in range(count)
    ]


def race(stack: LocalStack, orders: list[Order]) -> None:
    """16 threads each insert a share of the orders and try to match every order
    still RECEIVED, while the deployed matcher does the same from the stream."""
    tables = stack.settings
    orders_table = tables["FUNDROUTER_ORDERS_TABLE"]
    lines_table = tables["FUNDROUTER_LINES_TABLE"]
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        dynamodb = stack.client("dynamodb")
        repository = DynamoOrderRepository(dynamodb, orders_table)
        lines = DynamoLineRepository(dynamodb, lines_table)
        service = MatchService(
            LineCatalog(lines, ttl_seconds=0.5),
            DynamoMatchStore(dynamodb, orders_table, lines),
            lambda: datetime.now(UTC),
        )
        start.wait()
        for order in orders[index::THREADS]:
            repository.add(order)
        for order in random.Random(index).sample(orders, len(orders)):
            current = repository.get(order.tenant_id, order.order_id)
            if current is not None and current.status is OrderStatus.RECEIVED:
                service.match(current)

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(worker, i) for i in range(THREADS)]:
            future.result()


def settled(stack: LocalStack, orders: list[Order]) -> list[Order]:
    repository = DynamoOrderRepository(
        stack.client("dynamodb"), stack.settings["FUNDROUTER_ORDERS_TABLE"]
    )
    deadline = time.monotonic() + 30
    while True:
        stored = [repository.get(o.tenant_id, o.order_id) for o in orders]
        final = [o for o in stored if o is not None and o.status is not OrderStatus.RECEIVED]
        if len(final) == len(orders) or time.monotonic() > deadline:
            return final
        time.sleep(0.2)


def assert_invariant(stack: LocalStack, orders: list[Order], line_ids: list[str]) -> list[Order]:
    final = settled(stack, orders)
    assert len(final) == len(orders), "orders left RECEIVED"
    assert {o.status for o in final} <= {OrderStatus.MATCHED, OrderStatus.UNMATCHED}
    lines = DynamoLineRepository(stack.client("dynamodb"), stack.settings["FUNDROUTER_LINES_TABLE"])
    for line_id in line_ids:
        record = lines.get(line_id)
        assert record is not None
        held = sum(o.reserved for o in final if o.line_id == line_id)
        assert record.line.counters.reserved == held, line_id
        assert record.line.counters.reserved <= record.line.config.limit, line_id
    assert all(o.line_id in line_ids for o in final if o.status is OrderStatus.MATCHED)
    return final


def test_sixteen_threads_never_over_allocate_a_sharded_line(
    local_stack: LocalStack, admin: str
) -> None:
    product = f"p{uuid.uuid4().hex[:10]}"
    line_id = f"sharded-{product}"
    body = line_body(CONCURRENCY_LINE, products=[product], shards=4, dailyLimit=900_000)
    assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, body).status == 201
    orders = new_orders(f"tenant-{product}", product, 48, seed=2)  # ~3.2M asked of 0.9M a day

    race(local_stack, orders)

    final = assert_invariant(local_stack, orders, [line_id])
    matched = [o for o in final if o.status is OrderStatus.MATCHED]
    assert matched
    assert any(o.status is OrderStatus.UNMATCHED for o in final)
    lines = DynamoLineRepository(
        local_stack.client("dynamodb"), local_stack.settings["FUNDROUTER_LINES_TABLE"]
    )
    record = lines.get(line_id, sorted({o.claim_day for o in matched if o.claim_day}))
    assert record is not None
    assert len(record.shards) == 4
    assert sum(s.cap for s in record.shards) == 1_000_000
    assert sum(s.day_cap or 0 for s in record.shards) == 900_000
    for shard in record.shards:
        held = sum(o.reserved for o in matched if (o.shard or 0) == shard.index)
        assert shard.reserved == held <= shard.cap, shard
        assert sum(shard.daily_used.values()) == held <= (shard.day_cap or 0), shard
    # Which shards took the claims depends on how the stream cut the orders into
    # batches (a group goes on its first order's shard, room is moved to it): the
    # hash's spread is tested offline (test_sharded_lines); here, that no shard
    # holds an order of another and none is over its share, above.
    # Funds used as fully as possible: what is left today is less than any unmatched order.
    left = 900_000 - sum(o.amount for o in matched)
    assert left < min(o.amount for o in final if o.status is OrderStatus.UNMATCHED)


@pytest.fixture(scope="module")
def admin(local_stack: LocalStack) -> str:
    return local_stack.token("ADMIN", "fundrouter/lines.admin")


def test_sixteen_threads_never_over_allocate_one_line(local_stack: LocalStack, admin: str) -> None:
    product = f"p{uuid.uuid4().hex[:10]}"
    line_id = f"one-{product}"
    assert (
        local_stack.call(
            "PUT", f"/v1/lines/{line_id}", admin, line_body(CONCURRENCY_LINE, products=[product])
        ).status
        == 201
    )
    orders = new_orders(f"tenant-{product}", product, 48, seed=1)  # ~3.2M asked of 1M

    race(local_stack, orders)

    final = assert_invariant(local_stack, orders, [line_id])
    matched = [o for o in final if o.status is OrderStatus.MATCHED]
    assert matched
    assert any(o.status is OrderStatus.UNMATCHED for o in final)
    # Funds used as fully as possible: what is left is less than any unmatched order.
    left = 1_000_000 - sum(o.amount for o in matched)
    assert left < min(o.amount for o in final if o.status is OrderStatus.UNMATCHED)


@pytest.mark.parametrize("strategy", ["PRIORITY", "LOWEST_COST", "BEST_FIT", "WEIGHTED"])
def test_four_lines_under_each_strategy_never_over_allocate(
    local_stack: LocalStack, admin: str, strategy: str
) -> None:
    product = f"p{uuid.uuid4().hex[:10]}"
    line_ids = [f"{strategy.lower()}-{n}-{product}" for n in range(4)]
    for n, line_id in enumerate(line_ids):
        body = line_body(
            CONCURRENCY_LINE,
            products=[product],
            limit=[300_000, 500_000, 700_000, 900_000][n],
            priority=n,
            aprBps=2000 - 100 * n,
            weight=[10, 20, 30, 40][n],
        )
        assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, body).status == 201
    tenant = f"tenant-{product}"
    policy = {"strategy": strategy, "lineIds": line_ids}
    assert local_stack.call("PUT", f"/v1/tenants/{tenant}/routing", admin, policy).status == 200
    orders = new_orders(tenant, product, 48, seed=len(strategy))  # ~3.2M asked of 2.4M

    race(local_stack, orders)

    final = assert_invariant(local_stack, orders, line_ids)
    assert {o.decision.strategy for o in final if o.decision} == {strategy}
