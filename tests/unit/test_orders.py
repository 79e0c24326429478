"""The order domain and the intake service, with an in-memory repository."""

from datetime import UTC, datetime
from functools import partial

import pytest
from fundrouter.domain.clock import format_timestamp, utc_now
from fundrouter.domain.errors import OrderConflict, OrderNotFound
from fundrouter.domain.orders import Order, OrderRequest, OrderStatus
from fundrouter.http.models import OrderResource
from fundrouter.service.orders import OrderService
from pydantic import ValidationError

from tests.support.factories import order_request
from tests.support.fakes import InMemoryOrderRepository

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


request = partial(order_request, orderId="shop-1")


@pytest.fixture
def repository() -> InMemoryOrderRepository:
    return InMemoryOrderRepository()


@pytest.fixture
def service(repository: InMemoryOrderRepository) -> OrderService:
    return OrderService(repository, lambda: NOW)


def test_content_hash_ignores_key_order_but_not_values() -> None:
    same = OrderRequest.model_validate(
        dict(reversed(list(request().model_dump(by_alias=True).items())))
    )

    assert same.content_hash() == request().content_hash()
    assert request(amount=1250001).content_hash() != request().content_hash()
    assert request(metadata={}).content_hash() != request().content_hash()


def test_a_float_amount_is_refused_even_when_whole() -> None:
    with pytest.raises(ValidationError) as refused:
        request(amount=1250000.0)

    assert refused.value.errors()[0]["loc"] == ("amount",)


@pytest.mark.parametrize("code", ["XAU", "XXX", "ABC", "usd", "US"])
def test_only_iso_4217_currencies_of_real_money_are_accepted(code: str) -> None:
    with pytest.raises(ValidationError):
        request(currency=code)


def test_received_order_starts_its_history_and_version() -> None:
    order = Order.received("tenant-a", request(), NOW)

    assert order.status is OrderStatus.RECEIVED
    assert order.version == 1
    assert [entry.status for entry in order.history] == [OrderStatus.RECEIVED]
    assert order.reserved == order.outstanding == 0
    served = OrderResource.of(order).model_dump(mode="json", by_alias=True)
    assert served["createdAt"] == "2026-11-24T10:00:00.000Z"
    assert "contentHash" not in served


def test_timestamps_sort_as_strings_in_time_order() -> None:
    earlier = datetime(2026, 11, 24, 9, 59, 59, 999000, tzinfo=UTC)
    assert format_timestamp(earlier) < format_timestamp(NOW)
    assert format_timestamp(utc_now()).endswith("Z")


def test_submitting_a_new_order_stores_it_once(
    service: OrderService, repository: InMemoryOrderRepository
) -> None:
    submission = service.submit("tenant-a", request())

    assert submission.created
    assert repository.writes == 1
    assert service.get("tenant-a", "shop-1") == submission.order


def test_resubmitting_the_same_content_returns_the_original(
    service: OrderService, repository: InMemoryOrderRepository
) -> None:
    first = service.submit("tenant-a", request())

    again = service.submit("tenant-a", request())

    assert not again.created
    assert again.order == first.order
    assert repository.writes == 1


def test_resubmitting_different_content_under_the_same_id_is_a_conflict(
    service: OrderService,
) -> None:
    service.submit("tenant-a", request())

    with pytest.raises(OrderConflict) as conflict:
        service.submit("tenant-a", request(amount=1))

    assert conflict.value.fields[0].field == "orderId"
    assert service.get("tenant-a", "shop-1").amount == 1250000


def test_orders_of_other_tenants_are_not_found(service: OrderService) -> None:
    service.submit("tenant-a", request())

    with pytest.raises(OrderNotFound):
        service.get("tenant-b", "shop-1")
