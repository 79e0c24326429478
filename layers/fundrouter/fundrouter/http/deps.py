"""What routes receive through Powertools' ``Depends``: the caller, from the token's
verified claims, and the services fundrouter.bootstrap builds. Tests override the
builders (``app.dependency_overrides``), never these names."""

from dataclasses import replace
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
from fundrouter.service.tenants import Admission, TenantGate, TenantService
from fundrouter.service.tracking import StatusEventRepublisher
from fundrouter.service.webhooks import WebhookService

Gate = Annotated[TenantGate, Depends(bootstrap.tenant_gate)]


def admitted(request: Request, gate: Gate) -> tuple[Caller, Admission]:
    """The caller as its tenant: a rotated tenant's new client acts as the tenant it
    was created for; a suspended tenant or a retired client is refused here."""
    event = cast(APIGatewayProxyEventV2, request.resolved_event)
    caller = Caller.from_claims(event.request_context.authorizer.jwt_claim)
    admission = gate.admit(caller.client_id)
    return replace(caller, client_id=admission.tenant_id), admission


Admitted = Annotated[tuple[Caller, Admission], Depends(admitted)]


def caller(admitted: Admitted) -> Caller:
    return admitted[0]


CallerOf = Annotated[Caller, Depends(caller)]
Orders = Annotated[OrderService, Depends(bootstrap.order_service)]
History = Annotated[OrderHistoryService, Depends(bootstrap.history_service)]
Events = Annotated[OrderEventService, Depends(bootstrap.event_service)]
Lines = Annotated[LineService, Depends(bootstrap.line_service)]
Republisher = Annotated[StatusEventRepublisher, Depends(bootstrap.republisher)]
Audit = Annotated[AuditService, Depends(bootstrap.audit_report)]
Webhooks = Annotated[WebhookService, Depends(bootstrap.webhook_service)]
Tenants = Annotated[TenantService, Depends(bootstrap.tenant_service)]
