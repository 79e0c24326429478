"""The storage the services need, as small interfaces: DynamoDB in Lambda, fakes in
unit tests."""

from typing import Protocol

from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.domain.paging import Page


class OrderRepository(Protocol):
    def add(self, order: Order) -> Order | None:
        """Store a new order in one write. Returns None when stored, or the order
        already stored under the same (tenant, orderId), writing nothing."""
        ...

    def get(self, tenant_id: str, order_id: str) -> Order | None: ...

    def list_for_tenant(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        """Newest first. Raises InvalidCursor for a cursor it did not issue for this
        tenant and filter."""
        ...
