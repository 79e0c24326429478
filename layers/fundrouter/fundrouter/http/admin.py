"""Operator routes (scope lines.admin): publishing again the status events the
tracker could not publish, from the unpublished-events queue and the table."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field, StrictInt

from fundrouter.domain.orders import CamelModel
from fundrouter.http.deps import Republisher
from fundrouter.http.models import RepublishReport, answers

MAX_LETTERS_PER_CALL = 500
router = APIGatewayHttpRouter()  # module-level: see fundrouter.http.orders


class RepublishRequest(CamelModel):
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LETTERS_PER_CALL)] = 100


@router.post(
    "/v1/admin/status-events/republish",
    summary="Publish again the status of each order whose status event was not published",
    description=(
        "Reads up to `limit` letters from the unpublished-events queue and publishes "
        "OrderStatusChanged for each order as the table holds it now, with its current "
        "version. Letters whose event is on the bus are deleted; `failed` ones stay queued. "
        "Call again while `more` is true."
    ),
    responses=answers(RepublishReport, ok="What the run did"),
)
def republish(
    service: Republisher, request: Annotated[RepublishRequest | None, Body()] = None
) -> RepublishReport:
    limit = (request or RepublishRequest()).limit
    return RepublishReport.of(service.republish(limit), limit)
