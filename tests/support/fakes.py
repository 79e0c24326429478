"""In-memory stand-ins for the repository ports, for unit tests of the services."""

import base64

from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.domain.paging import Page


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self.orders: dict[tuple[str, str], Order] = {}
        self.writes = 0

    def add(self, order: Order) -> Order | None:
        key = (order.tenant_id, order.order_id)
        if key in self.orders:
            return self.orders[key]
        self.writes += 1
        self.orders[key] = order
        return None

    def get(self, tenant_id: str, order_id: str) -> Order | None:
        return self.orders.get((tenant_id, order_id))

    def list_for_tenant(
        self, tenant_id: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> Page[Order]:
        mine = sorted(
            (
                o
                for (tenant, _), o in self.orders.items()
                if tenant == tenant_id and (status is None or o.status == status)
            ),
            key=lambda o: (o.created_at, o.order_id),
            reverse=True,
        )
        start = 0
        if cursor is not None:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError as error:
                raise InvalidCursor from error
        end = start + limit
        more = end < len(mine)
        next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if more else None
        return Page(items=mine[start:end], next_cursor=next_cursor)
