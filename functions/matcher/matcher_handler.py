"""MatcherFunction: for each order the Orders stream shows waiting for a match (new,
or re-queued after a decline), claim a line's capacity atomically or mark it
UNMATCHED. Records fail independently (partial batch failures); a repeat delivery
finds the order moved on and changes nothing (fundrouter.triggers.streams)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from fundrouter import METRICS_NAMESPACE, bootstrap
from fundrouter.service.matching import MatchService  # every invocation ranks and claims
from fundrouter.triggers.streams import match_batch

if TYPE_CHECKING:  # annotations only
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)


def handle(
    event: dict[str, Any], _context: LambdaContext, service: MatchService
) -> PartialItemFailureResponse:
    """The seam tests call with their own service."""
    return match_batch(event, service)


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return handle(event, context, bootstrap.match_service())
