"""Operator routes (scope lines.admin): publishing again the status events the
tracker could not publish, from the unpublished-events queue and the table."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field, StrictInt

from fundrouter.domain.orders import CamelModel
from fundrouter.http.deps import Republisher
from fundrouter.http.responses import json_response
from fundrouter.service.tracking import RepublishReport

MAX_LETTERS_PER_CALL = 500


class RepublishRequest(CamelModel):
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LETTERS_PER_CALL)] = 100


def routes() -> APIGatewayHttpRouter:
    """A new router per resolver (see fundrouter.http.orders.routes)."""
    router = APIGatewayHttpRouter()

    @router.post(
        "/v1/admin/status-events/republish",
        summary="Publish again the status of each order whose status event was not published",
        description=(
            "Reads up to `limit` letters from the unpublished-events queue and publishes "
            "OrderStatusChanged for each order as the table holds it now, with its current "
            "version. Letters whose event is on the bus are deleted; `failed` ones stay queued. "
            "Call again while `more` is true."
        ),
    )
    def republish(
        service: Republisher, request: Annotated[RepublishRequest | None, Body()] = None
    ) -> Response[str]:
        limit = (request or RepublishRequest()).limit
        return json_response(HTTPStatus.OK, resource(service.republish(limit), limit))

    return router


def resource(report: RepublishReport, limit: int) -> dict[str, object]:
    return {
        "republished": [
            {
                "tenantId": e.tenant_id,
                "orderId": e.order_id,
                "status": e.to_status.value,
                "version": e.version,
            }
            for e in report.republished
        ],
        "missing": [{"tenantId": m.tenant_id, "orderId": m.order_id} for m in report.missing],
        "failed": [
            {"tenantId": f.tenant_id, "orderId": f.order_id, "reason": reason}
            for f, reason in report.failed
        ],
        "letters": report.letters,
        # The run stopped at the limit: more letters may be waiting.
        "more": report.letters >= limit,
    }
