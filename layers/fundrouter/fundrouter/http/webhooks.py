"""Webhook routes (tenant scopes): a tenant's endpoints, their secrets and their
deliveries. The tenant is the token's client; another tenant's endpoint is 404."""

from datetime import timedelta
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.domain.webhooks import (
    DELIVERY_ID_PATTERN,
    ENDPOINT_ID_PATTERN,
    DeliveryState,
    EndpointRequest,
    RotateRequest,
)
from fundrouter.http.deps import CallerOf, Webhooks
from fundrouter.http.models import answers
from fundrouter.http.params import Cursor, Limit
from fundrouter.http.responses import answer
from fundrouter.http.webhook_models import (
    DeliveryPage,
    DeliveryResource,
    EndpointCreated,
    EndpointList,
    EndpointResource,
)

router = APIGatewayHttpRouter()  # module-level: see fundrouter.http.orders

EndpointPath = Annotated[str, Path(alias="endpointId", pattern=ENDPOINT_ID_PATTERN)]
DeliveryPath = Annotated[str, Path(alias="deliveryId", pattern=DELIVERY_ID_PATTERN)]


@router.post(
    "/v1/webhooks",
    summary="Register a webhook endpoint",
    description="The answer carries the endpoint's signing secret: it is shown this once.",
    responses=answers(EndpointCreated, created="The endpoint and its secret"),
)
def create_webhook(
    request: Annotated[EndpointRequest, Body()], caller: CallerOf, service: Webhooks
) -> Response[EndpointCreated]:
    return answer(HTTPStatus.CREATED, EndpointCreated.of(service.create(caller.client_id, request)))


@router.get(
    "/v1/webhooks",
    summary="List the tenant's webhook endpoints",
    responses=answers(EndpointList, ok="Every endpoint, oldest first"),
)
def list_webhooks(caller: CallerOf, service: Webhooks) -> EndpointList:
    return EndpointList(items=[EndpointResource.of(e) for e in service.list(caller.client_id)])


@router.get(
    "/v1/webhooks/<endpointId>",
    summary="Read one webhook endpoint",
    responses=answers(EndpointResource, ok="The endpoint"),
)
def get_webhook(endpoint_id: EndpointPath, caller: CallerOf, service: Webhooks) -> EndpointResource:
    return EndpointResource.of(service.get(caller.client_id, endpoint_id))


@router.delete(
    "/v1/webhooks/<endpointId>",
    summary="Delete a webhook endpoint; its pending deliveries are cancelled",
    responses=answers(EndpointResource, ok="The endpoint as it was"),
)
def delete_webhook(
    endpoint_id: EndpointPath, caller: CallerOf, service: Webhooks
) -> EndpointResource:
    return EndpointResource.of(service.delete(caller.client_id, endpoint_id))


@router.post(
    "/v1/webhooks/<endpointId>/secret/rotate",
    summary="Give the endpoint a new signing secret",
    description=(
        "The new secret is shown this once. The old one keeps signing deliveries (each"
        " carries a `v1=` signature per valid secret) for `graceSeconds` (default a day)."
    ),
    responses=answers(EndpointCreated, ok="The endpoint and its new secret"),
)
def rotate_webhook_secret(
    endpoint_id: EndpointPath,
    caller: CallerOf,
    service: Webhooks,
    request: Annotated[RotateRequest | None, Body()] = None,
) -> EndpointCreated:
    grace = timedelta(seconds=(request or RotateRequest()).grace_seconds)
    return EndpointCreated.of(service.rotate(caller.client_id, endpoint_id, grace))


@router.get(
    "/v1/webhooks/<endpointId>/deliveries",
    summary="List an endpoint's deliveries, newest event first",
    responses=answers(DeliveryPage, ok="A page of deliveries"),
)
def list_deliveries(
    *,
    endpoint_id: EndpointPath,
    caller: CallerOf,
    service: Webhooks,
    state: Annotated[DeliveryState | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    page = service.deliveries(caller.client_id, endpoint_id, state, limit, cursor)
    return DeliveryPage.of(page)


@router.get(
    "/v1/webhooks/<endpointId>/deliveries/<deliveryId>",
    summary="Read one delivery and its attempts",
    responses=answers(DeliveryResource, ok="The delivery"),
)
def get_delivery(
    endpoint_id: EndpointPath, delivery_id: DeliveryPath, caller: CallerOf, service: Webhooks
) -> DeliveryResource:
    return DeliveryResource.of(service.delivery(caller.client_id, endpoint_id, delivery_id))


@router.post(
    "/v1/webhooks/<endpointId>/deliveries/<deliveryId>/resend",
    summary="Send a delivery again, whatever it ended as",
    description="Due at once, with a new retry window; its attempts keep being logged on it.",
    responses=answers(DeliveryResource, accepted="The delivery, due now"),
)
def resend_delivery(
    endpoint_id: EndpointPath, delivery_id: DeliveryPath, caller: CallerOf, service: Webhooks
) -> Response[DeliveryResource]:
    delivery = service.resend(caller.client_id, endpoint_id, delivery_id)
    return answer(HTTPStatus.ACCEPTED, DeliveryResource.of(delivery))
