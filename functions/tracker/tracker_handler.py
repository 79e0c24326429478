"""TrackerFunction: every change on the Orders stream that moves an order's status
publishes an OrderStatusChanged event to the orders event bus and counts in the
metrics (fundrouter.triggers.streams). Other records (per-order items such as
``EVENT#...``, removals, writes that kept the status) are skipped, never failed.
What cannot be published is dead-lettered on the unpublished-events queue, from
which ``POST /v1/admin/status-events/republish`` publishes the order's status again.
A redelivered record publishes the same event again, with the same ``version``,
which is what subscribers de-duplicate on.

Metrics (namespace ``fundrouter``): ``OrdersByStatus`` [status], ``MatchedOrders`` and
``MatchedVolume`` (minor units) [lineId], ``MatchedOrders`` / ``UnmatchedOrders`` for
the unmatched rate, and ``StatusEventsDeadLettered``."""

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
