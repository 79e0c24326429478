"""What routes receive through Powertools' ``Depends``: the caller, from the token's
verified claims, and the services fundrouter.bootstrap builds. Tests override the
builders (``app.dependency_overrides``), never these names."""

from typing import Annotated, cast

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from fundrouter import bootstrap
from fundrouter.http.auth import Caller
from fundrouter.service.auditing import AuditService
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.orders import OrderHistoryService, OrderService
from fundrouter.service.tracking import StatusEventRepublisher
from fundrouter.service.webhooks import WebhookService


def caller(request: Request) -> Caller:
    event = cast(APIGatewayProxyEventV2, request.resolved_event)
    return Caller.from_claims(event.request_context.authorizer.jwt_claim)


CallerOf = Annotated[Caller, Depends(caller)]
Orders = Annotated[OrderService, Depends(bootstrap.order_service)]
History = Annotated[OrderHistoryService, Depends(bootstrap.history_service)]
Events = Annotated[OrderEventService, Depends(bootstrap.event_service)]
Lines = Annotated[LineService, Depends(bootstrap.line_service)]
Republisher = Annotated[StatusEventRepublisher, Depends(bootstrap.republisher)]
Audit = Annotated[AuditService, Depends(bootstrap.audit_report)]
Webhooks = Annotated[WebhookService, Depends(bootstrap.webhook_service)]
