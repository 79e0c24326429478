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
from fundrouter.http.deps import CallerOf, Events, History, Orders
from fundrouter.http.responses import json_response
from fundrouter.service.lifecycle import Recorded

metrics = Metrics(
    namespace=METRICS_NAMESPACE
)  # shares the handler's buffer; flushed by its log_metrics

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
    if recorded.order.get("overLimit") and not recorded.replayed:
        metrics.add_metric("OverLimitDisbursements", MetricUnit.Count, 1)


def _tenant_for_read(caller: Caller, tenant_id: str | None) -> str:
    """Tenants read their own orders; an admin reads any tenant's by naming it."""
    if tenant_id is None or tenant_id == caller.client_id:
        return caller.client_id
    if not caller.is_admin:
        raise Forbidden((Scope.LINES_ADMIN,))
    return tenant_id


def routes() -> APIGatewayHttpRouter:
    """A new router per resolver: a router is bound to the resolver that includes it,
    so one module-level router would follow whichever app included it last."""
    router = APIGatewayHttpRouter()

    @router.post("/v1/orders", summary="Submit an order for financing")
    def submit_order(
        order: Annotated[OrderRequest, Body()], caller: CallerOf, service: Orders
    ) -> Response[str]:
        submission = service.submit(caller.client_id, order)
        metrics.add_metric(
            "OrdersReceived" if submission.created else "OrdersRepeated", MetricUnit.Count, 1
        )
        status = HTTPStatus.ACCEPTED if submission.created else HTTPStatus.OK
        return json_response(status, submission.order.resource())

    @router.post("/v1/orders/<orderId>/events", summary="Report what happened to an order")
    def post_order_event(
        order_id: Annotated[OrderId, Path(alias="orderId")],
        event: Annotated[OrderEvent, Body()],
        caller: CallerOf,
        service: Events,
    ) -> Response[str]:
        recorded = service.record(caller.client_id, order_id, event)
        metrics.add_metric(
            "OrderEventsRepeated" if recorded.replayed else f"OrderEvents{event.type.title()}",
            MetricUnit.Count,
            1,
        )
        _count_over_limit(recorded)
        return json_response(HTTPStatus.OK, recorded.order)

    @router.get("/v1/orders/<orderId>", summary="Read one order")
    def get_order(
        order_id: Annotated[OrderId, Path(alias="orderId")],
        caller: CallerOf,
        service: Orders,
        tenant_id: TenantQuery = None,
    ) -> Response[str]:
        tenant = _tenant_for_read(caller, tenant_id)
        return json_response(HTTPStatus.OK, service.get(tenant, order_id).resource())

    @router.get("/v1/orders/<orderId>/history", summary="Read an order's history, oldest first")
    def get_order_history(
        *,
        order_id: Annotated[OrderId, Path(alias="orderId")],
        caller: CallerOf,
        history: History,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
        tenant_id: TenantQuery = None,
    ) -> Response[str]:
        tenant = _tenant_for_read(caller, tenant_id)
        page = history.page(tenant, order_id, limit, cursor)
        return json_response(
            HTTPStatus.OK,
            {
                "items": [entry.model_dump(mode="json", by_alias=True) for entry in page.items],
                "nextCursor": page.next_cursor,
            },
        )

    @router.get("/v1/orders", summary="List orders, newest first")
    def list_orders(
        *,
        caller: CallerOf,
        service: Orders,
        status: Annotated[OrderStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
        tenant_id: TenantQuery = None,
    ) -> Response[str]:
        tenant = _tenant_for_read(caller, tenant_id)
        page = service.list(tenant, status, limit, cursor)
        return json_response(
            HTTPStatus.OK,
            {"items": [order.resource() for order in page.items], "nextCursor": page.next_cursor},
        )

    return router
