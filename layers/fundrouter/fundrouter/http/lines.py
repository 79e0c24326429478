"""Admin routes for lending lines and tenants' routing policies (scope lines.admin)."""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.domain.lines import LineConfig, LineId
from fundrouter.domain.orders import TENANT_ID_PATTERN
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.http.deps import Lines
from fundrouter.http.responses import json_response

LinePath = Annotated[LineId, Path(alias="lineId")]
TenantPath = Annotated[str, Path(alias="tenantId", pattern=TENANT_ID_PATTERN)]


def routes() -> APIGatewayHttpRouter:
    """A new router per resolver: a router is bound to the resolver that includes it,
    so one module-level router would follow whichever app included it last."""
    router = APIGatewayHttpRouter()

    @router.put("/v1/lines/<lineId>", summary="Create or replace a lending line's configuration")
    def put_line(
        line_id: LinePath, config: Annotated[LineConfig, Body()], service: Lines
    ) -> Response[str]:
        view, created = service.put(line_id, config)
        return json_response(HTTPStatus.CREATED if created else HTTPStatus.OK, view.resource())

    @router.patch("/v1/lines/<lineId>", summary="Change some of a line's configuration")
    def patch_line(
        line_id: LinePath,
        changes: Annotated[dict[str, Any], Body(max_length=32)],
        service: Lines,
    ) -> Response[str]:
        return json_response(HTTPStatus.OK, service.patch(line_id, changes).resource())

    @router.get("/v1/lines/<lineId>", summary="A line's configuration and utilization")
    def get_line(line_id: LinePath, service: Lines) -> Response[str]:
        return json_response(HTTPStatus.OK, service.get(line_id).resource())

    @router.get("/v1/lines", summary="Every line with its utilization")
    def list_lines(service: Lines) -> Response[str]:
        return json_response(HTTPStatus.OK, {"items": [v.resource() for v in service.list()]})

    @router.put("/v1/tenants/<tenantId>/routing", summary="Set a tenant's routing policy")
    def put_routing(
        tenant_id: TenantPath, policy: Annotated[RoutingPolicy, Body()], service: Lines
    ) -> Response[str]:
        stored = service.put_routing(tenant_id, policy)
        return json_response(
            HTTPStatus.OK, {"tenantId": tenant_id} | stored.model_dump(mode="json", by_alias=True)
        )

    @router.get("/v1/tenants/<tenantId>/routing", summary="A tenant's routing policy")
    def get_routing(tenant_id: TenantPath, service: Lines) -> Response[str]:
        policy = service.routing(tenant_id)
        return json_response(
            HTTPStatus.OK, {"tenantId": tenant_id} | policy.model_dump(mode="json", by_alias=True)
        )

    return router
