"""Tenant administration (scope lines.admin, decision 30): self-service clients of the
user pool, created, listed, rotated, suspended and resumed without a deployment."""

from datetime import timedelta
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.domain.tenants import RotationRequest, TenantPatch, TenantRequest, TenantStatus
from fundrouter.http.deps import Tenants
from fundrouter.http.models import TenantCredentials, TenantPage, TenantResource, answers
from fundrouter.http.params import Limit, TenantPath
from fundrouter.http.responses import answer

router = APIGatewayHttpRouter()  # module-level: see fundrouter.http.orders

THE_TENANT = answers(TenantResource, ok="The tenant as it is now")


@router.post(
    "/v1/tenants",
    summary="Create a tenant: a new OAuth2 client with the tenant scopes",
    responses=answers(TenantCredentials, created="The tenant and its client's secret, once"),
)
def create_tenant(
    request: Annotated[TenantRequest, Body()], service: Tenants
) -> Response[TenantCredentials]:
    return answer(HTTPStatus.CREATED, TenantCredentials.of(service.create(request)))


@router.get(
    "/v1/tenants",
    summary="List tenants (self-service ones; the template's clients have no record)",
    responses=answers(TenantPage, ok="A page of tenants, in no set order"),
)
def list_tenants(
    service: Tenants,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> TenantPage:
    return TenantPage.of(service.list(limit, cursor))


@router.get("/v1/tenants/<tenantId>", summary="Read a tenant", responses=THE_TENANT)
def get_tenant(tenant_id: TenantPath, service: Tenants) -> TenantResource:
    return TenantResource.of(service.get(tenant_id))


@router.patch(
    "/v1/tenants/<tenantId>",
    summary="Rename a tenant or change its quota (null ordersPerMinute: none)",
    responses=THE_TENANT,
)
def patch_tenant(
    tenant_id: TenantPath, patch: Annotated[TenantPatch, Body()], service: Tenants
) -> TenantResource:
    return TenantResource.of(service.patch(tenant_id, patch))


@router.post(
    "/v1/tenants/<tenantId>/secrets",
    summary="Rotate a tenant's secret: a new client; the current one works for graceSeconds",
    responses=answers(TenantCredentials, created="The new client and its secret, once"),
)
def rotate_secret(
    tenant_id: TenantPath,
    service: Tenants,
    request: Annotated[RotationRequest | None, Body()] = None,
) -> Response[TenantCredentials]:
    grace = timedelta(seconds=(request or RotationRequest()).grace_seconds)
    return answer(HTTPStatus.CREATED, TenantCredentials.of(service.rotate(tenant_id, grace)))


@router.post(
    "/v1/tenants/<tenantId>/suspend",
    summary="Suspend a tenant: its next call is refused (403 tenant_suspended)",
    responses=THE_TENANT,
)
def suspend_tenant(tenant_id: TenantPath, service: Tenants) -> TenantResource:
    return TenantResource.of(service.set_status(tenant_id, TenantStatus.SUSPENDED))


@router.post("/v1/tenants/<tenantId>/resume", summary="Resume a tenant", responses=THE_TENANT)
def resume_tenant(tenant_id: TenantPath, service: Tenants) -> TenantResource:
    return TenantResource.of(service.set_status(tenant_id, TenantStatus.ACTIVE))
