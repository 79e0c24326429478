"""The sharded, keys-only Orders indexes on moto: a tenant's listing merges its shards
into one exact newest-first order across pages, and the due query finds every due
order in every shard."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.persistence.orders import (
    DUE_SHARDS,
    TENANT_SHARDS,
    DynamoOrderIndexes,
    DynamoOrderRepository,
    due_at,
    due_shard,
    order_pk,
)

from tests.support.aws import scan_all
from tests.support.factories import order_request
from tests.support.faults import Injected, always, error

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TENANT = "tenant-a"


def order(number: int, tenant: str = TENANT, **changes: Any) -> Order:
    """Three orders per second, so sort keys tie on the time and differ by id."""
    request = order_request(
        orderId=f"o-{number:04d}",
        amount=10_000 + number,
        customer={"id": "c-1", "region": "GD", "creditGrade": "B"},
        metadata={},
    )
    received = Order.received(tenant, request, NOW + timedelta(seconds=number // 3))
    return received.model_copy(update=changes)


def matched(number: int, expires_in: float) -> dict[str, Any]:
    return {
        "status": OrderStatus.MATCHED,
        "line_id": "line-1",
        "reserved": 10_000 + number,
        "hold_expires_at": NOW + timedelta(seconds=expires_in),
    }


@pytest.fixture
def stored(orders_table: str, dynamodb: Any) -> DynamoOrderRepository:
    repository = DynamoOrderRepository(dynamodb, orders_table)
    for number in range(150):
        # Every third order MATCHED, the rest RECEIVED; another tenant in between.
        changes = matched(number, 900) if number % 3 == 0 else {}
        assert repository.add(order(number, **changes)) is None
        assert repository.add(order(number, tenant="tenant-b")) is None
    return repository


def walk(repository: DynamoOrderRepository, status: OrderStatus | None, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = repository.list_for_tenant(TENANT, status, limit, cursor)
        assert len(page.items) <= limit
        seen += [o.order_id for o in page.items if o.tenant_id == TENANT]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def newest_first(numbers: list[int]) -> list[str]:
    return [o.order_id for o in sorted((order(n) for n in numbers), key=sort_key, reverse=True)]


def sort_key(o: Order) -> tuple[datetime, str]:
    return o.created_at, o.order_id


@pytest.mark.parametrize("limit", [1, 7, 50, 100])
def test_a_tenants_listing_is_exactly_its_orders_newest_first_across_shards(
    stored: DynamoOrderRepository, limit: int
) -> None:
    assert walk(stored, None, limit) == newest_first(list(range(150)))


@pytest.mark.parametrize("limit", [4, 13])
def test_a_filtered_listing_is_exactly_the_orders_in_that_status(
    stored: DynamoOrderRepository, limit: int
) -> None:
    assert walk(stored, OrderStatus.MATCHED, limit) == newest_first(list(range(0, 150, 3)))
    assert walk(stored, OrderStatus.RECEIVED, limit) == newest_first(
        [n for n in range(150) if n % 3]
    )


def test_one_tenants_orders_are_spread_over_every_shard(
    stored: DynamoOrderRepository, orders_table: str, dynamodb: Any
) -> None:
    items = [i for i in scan_all(dynamodb, orders_table) if i["tenantId"]["S"] == TENANT]

    assert len({i["gsi1pk"]["S"] for i in items}) == TENANT_SHARDS
    assert len({i["gsi2pk"]["S"] for i in items}) == 2 * TENANT_SHARDS
    assert len({i["dueShard"]["S"] for i in items}) == DUE_SHARDS


def test_due_finds_every_due_order_in_every_shard_oldest_first(
    orders_table: str, dynamodb: Any
) -> None:
    repository = DynamoOrderRepository(dynamodb, orders_table)
    # Holds expiring a second apart, many later than "now"; RECEIVED orders due for a
    # re-drive a while after they were received; DISBURSED orders never due.
    orders = [
        order(n, **matched(n, n - 150))
        if n % 3 == 0
        else order(n, status=OrderStatus.DISBURSED, line_id="line-1")
        if n % 3 == 1
        else order(n)
        for n in range(300)
    ]
    for each in orders:
        assert repository.add(each) is None
    now = NOW + timedelta(seconds=100)
    indexes = DynamoOrderIndexes(dynamodb, orders_table)

    unlisted: list[tuple[str, Exception]] = []
    every = indexes.due(now, 1_000, lambda shard, error: unlisted.append((shard, error)))
    oldest = indexes.due(now, 10, lambda shard, error: unlisted.append((shard, error)))

    due = [(when, o.order_id) for o in orders if (when := due_at(o)) is not None and when <= now]
    assert [o.order_id for o in every if isinstance(o, Order)] == [oid for _, oid in sorted(due)]
    assert {o.status for o in every if isinstance(o, Order)} == {
        OrderStatus.MATCHED,
        OrderStatus.RECEIVED,
    }
    assert 0 < len(due) < 200  # and the rest is not due yet
    assert oldest == every[:10]
    assert unlisted == []


def test_a_shard_that_cannot_be_listed_hides_only_its_own_orders(
    orders_table: str, dynamodb: Any
) -> None:
    repository = DynamoOrderRepository(dynamodb, orders_table)
    orders = [order(n) for n in range(100)]  # RECEIVED: all due for a re-drive
    for each in orders:
        assert repository.add(each) is None
    down = due_shard(order_pk(TENANT, orders[0].order_id))
    Injected(  # past every retry
        dynamodb,
        "Query",
        always(error("InternalServerError")),
        lambda request: request["ExpressionAttributeValues"][":k"] == {"S": down},
    )
    indexes = DynamoOrderIndexes(dynamodb, orders_table)
    unlisted: list[tuple[str, str]] = []

    due = indexes.due(
        NOW + timedelta(minutes=5),
        1_000,
        lambda shard, error: unlisted.append((shard, type(error).__name__)),
    )

    hidden = {o.order_id for o in orders if due_shard(order_pk(TENANT, o.order_id)) == down}
    assert unlisted == [(down, "Unavailable")]
    assert 0 < len(hidden) < len(orders)
    assert {o.order_id for o in due if isinstance(o, Order)} == {
        o.order_id for o in orders
    } - hidden
