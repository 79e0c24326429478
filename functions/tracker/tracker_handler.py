"""TrackerFunction: every change on the Orders stream that moves an order's status
publishes an OrderStatusChanged event (subscribers de-duplicate on its ``version``) and
counts in the metrics; other records are skipped. What cannot be published goes to the
queue ``POST /v1/admin/status-events/republish`` drains (fundrouter.triggers.streams)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from fundrouter import METRICS_NAMESPACE, bootstrap
from fundrouter.triggers.streams import track_batch

if TYPE_CHECKING:  # annotations only
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from fundrouter.service.ports import DeadLetterSink, StatusEventPublisher

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)


def handle(
    event: dict[str, Any],
    _context: LambdaContext,
    publisher: StatusEventPublisher,
    sink: DeadLetterSink,
) -> PartialItemFailureResponse:
    """The seam tests call with their own publisher and dead-letter queue."""
    return track_batch(event, publisher, sink)


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return handle(event, context, bootstrap.event_publisher(), bootstrap.dead_letters())
