"""Order routes: parse, call the OrderService, shape the response."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.lifecycle import OrderEvent
from fundrouter.domain.orders import TENANT_ID_PATTERN, OrderId, OrderRequest, OrderStatus
from fundrouter.http.auth import Caller, Forbidden, Scope
from fundrouter.http.deps import Admitted, CallerOf, Events, Gate, History, Orders
from fundrouter.http.models import HistoryPage, OrderPage, OrderResource, answers
from fundrouter.http.params import Cursor, Limit
from fundrouter.http.responses import answer
from fundrouter.service.lifecycle import Recorded

# Shares the handler's buffer; flushed by its log_metrics.
metrics = Metrics(namespace=METRICS_NAMESPACE)
# Routes take what they need through Depends, never from the router: one module-level
# router serves any resolver that includes it.
router = APIGatewayHttpRouter()

OrderPath = Annotated[OrderId, Path(alias="orderId")]
TenantQuery = Annotated[
    str | None,
    Query(
        alias="tenantId",
        pattern=TENANT_ID_PATTERN,
        description="Admin callers only: whose orders to read.",
    ),
]


def _count_over_limit(recorded: Recorded) -> None:
    """A late disbursement drawn beyond its line's limit: alarmed on (template.yaml)."""
    if recorded.order.over_limit and not recorded.replayed:
        metrics.add_metric("OverLimitDisbursements", MetricUnit.Count, 1)


def _tenant_for_read(caller: Caller, tenant_id: str | None) -> str:
    """Tenants read their own orders; an admin reads any tenant's by naming it."""
    if tenant_id is None or tenant_id == caller.client_id:
        return caller.client_id
    if not caller.is_admin:
        raise Forbidden((Scope.LINES_ADMIN,))
    return tenant_id


@router.post(
    "/v1/orders",
    summary="Submit an order for financing",
    responses=answers(
        OrderResource,
        accepted="A new order, received: matching follows",
        ok="The same order again: the order as it stands",
    ),
)
def submit_order(
    order: Annotated[OrderRequest, Body()],
    caller: CallerOf,
    service: Orders,
    admitted: Admitted,
    gate: Gate,
) -> Response[OrderResource]:
    gate.take_order_slot(admitted[1])  # the tenant's quota: 429 before anything is written
    submission = service.submit(caller.client_id, order)
    metrics.add_metric(
        "OrdersReceived" if submission.created else "OrdersRepeated", MetricUnit.Count, 1
    )
    status = HTTPStatus.ACCEPTED if submission.created else HTTPStatus.OK
    return answer(status, OrderResource.of(submission.order))


@router.post(
    "/v1/orders/<orderId>/events",
    summary="Report what happened to an order",
    responses=answers(OrderResource, ok="The order after the event, or as it stands"),
)
def post_order_event(
    order_id: OrderPath, event: Annotated[OrderEvent, Body()], caller: CallerOf, service: Events
) -> OrderResource:
    recorded = service.record(caller.client_id, order_id, event)
    metrics.add_metric(
        "OrderEventsRepeated" if recorded.replayed else f"OrderEvents{event.type.title()}",
        MetricUnit.Count,
        1,
    )
    _count_over_limit(recorded)
    return OrderResource.of(recorded.order)


@router.get(
    "/v1/orders/<orderId>",
    summary="Read one order",
    responses=answers(OrderResource, ok="The order"),
)
def get_order(
    order_id: OrderPath, caller: CallerOf, service: Orders, tenant_id: TenantQuery = None
) -> OrderResource:
    return OrderResource.of(service.get(_tenant_for_read(caller, tenant_id), order_id))


@router.get(
    "/v1/orders/<orderId>/history",
    summary="Read an order's history, oldest first",
    responses=answers(HistoryPage, ok="A page of the order's history"),
)
def get_order_history(
    *,
    order_id: OrderPath,
    caller: CallerOf,
    history: History,
    limit: Limit = 50,
    cursor: Cursor = None,
    tenant_id: TenantQuery = None,
) -> HistoryPage:
    tenant = _tenant_for_read(caller, tenant_id)
    return HistoryPage.of(history.page(tenant, order_id, limit, cursor))


@router.get(
    "/v1/orders",
    summary="List orders, newest first",
    responses=answers(OrderPage, ok="A page of the tenant's orders"),
)
def list_orders(
    *,
    caller: CallerOf,
    service: Orders,
    status: Annotated[OrderStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    tenant_id: TenantQuery = None,
) -> OrderPage:
    return OrderPage.of(service.list(_tenant_for_read(caller, tenant_id), status, limit, cursor))
