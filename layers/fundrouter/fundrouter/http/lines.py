"""Admin routes for lending lines and tenants' routing policies (scope lines.admin)."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.domain.lines import LineConfig, LineId
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.http.deps import Lines
from fundrouter.http.models import LineList, LinePatch, LineResource, RoutingResource, answers
from fundrouter.http.params import TenantPath
from fundrouter.http.responses import answer

router = APIGatewayHttpRouter()  # module-level: see fundrouter.http.orders

LinePath = Annotated[LineId, Path(alias="lineId")]
THE_LINE = answers(LineResource, ok="The line as it is now")
THE_POLICY = answers(RoutingResource, ok="The tenant's routing policy")


@router.put(
    "/v1/lines/<lineId>",
    summary="Create or replace a lending line's configuration",
    responses=answers(
        LineResource, created="A new line", ok="The line, its configuration replaced"
    ),
)
def put_line(
    line_id: LinePath, config: Annotated[LineConfig, Body()], service: Lines
) -> Response[LineResource]:
    view, created = service.put(line_id, config)
    return answer(HTTPStatus.CREATED if created else HTTPStatus.OK, LineResource.of(view))


@router.patch(
    "/v1/lines/<lineId>", summary="Change some of a line's configuration", responses=THE_LINE
)
def patch_line(
    line_id: LinePath, changes: Annotated[LinePatch, Body()], service: Lines
) -> LineResource:
    return LineResource.of(service.patch(line_id, changes.root))


@router.get(
    "/v1/lines/<lineId>", summary="A line's configuration and utilization", responses=THE_LINE
)
def get_line(line_id: LinePath, service: Lines) -> LineResource:
    return LineResource.of(service.get(line_id))


@router.get(
    "/v1/lines",
    summary="Every line with its utilization",
    responses=answers(LineList, ok="Every line, by lineId"),
)
def list_lines(service: Lines) -> LineList:
    return LineList(items=[LineResource.of(v) for v in service.list()])


@router.put(
    "/v1/tenants/<tenantId>/routing", summary="Set a tenant's routing policy", responses=THE_POLICY
)
def put_routing(
    tenant_id: TenantPath, policy: Annotated[RoutingPolicy, Body()], service: Lines
) -> RoutingResource:
    return RoutingResource.of(tenant_id, service.put_routing(tenant_id, policy))


@router.get(
    "/v1/tenants/<tenantId>/routing", summary="A tenant's routing policy", responses=THE_POLICY
)
def get_routing(tenant_id: TenantPath, service: Lines) -> RoutingResource:
    return RoutingResource.of(tenant_id, service.routing(tenant_id))
