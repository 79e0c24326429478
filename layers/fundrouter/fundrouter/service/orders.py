"""Order intake and queries."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fundrouter.domain.errors import OrderConflict, OrderNotFound
from fundrouter.domain.orders import HistoryEntry, Order, OrderRequest, OrderStatus
from fundrouter.domain.paging import Page
from fundrouter.service.ports import OrderHistory, OrderRepository


@dataclass(frozen=True)
class Submission:
    order: Order
    created: bool


class OrderService:
    def __init__(self, repository: OrderRepository, clock: Callable[[], datetime]) -> None:
        self._repository = repository
        self._clock = clock

    def submit(self, tenant_id: str, request: OrderRequest) -> Submission:
        """Idempotent on (tenant, orderId): the same content again returns the stored
        order, different content under the same id is a conflict."""
        order = Order.received(tenant_id, request, self._clock())
        existing = self._repository.add(order)
        if existing is None:
            return Submission(order, created=True)
        if existing.content_hash != order.content_hash:
            raise OrderConflict(request.order_id)
        return Submission(existing, created=False)

    def get(self, tenant_id: str, order_id: str) -> Order:
        order = self._repository.get(tenant_id, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def list(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        return self._repository.list_for_tenant(tenant_id, status, limit, cursor)


class OrderHistoryService:
    """An order's whole history, page by page: the order resource shows the newest
    entries only."""

    def __init__(self, history: OrderHistory) -> None:
        self._history = history

    def page(
        self, tenant_id: str, order_id: str, limit: int, cursor: str | None
    ) -> Page[HistoryEntry]:
        page = self._history.page(tenant_id, order_id, limit, cursor)
        if page is None:
            raise OrderNotFound(order_id)
        return page
