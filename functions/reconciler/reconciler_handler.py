"""ReconcilerFunction, every minute: expires holds, re-drives orders left waiting and
audits the lines' counters (fundrouter.triggers.reconciling)."""

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from fundrouter import METRICS_NAMESPACE, bootstrap
from fundrouter.service.reconciling import Reconciler
from fundrouter.triggers.reconciling import reconcile

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)

# Kept free of the run's budget: the summary, the metrics and the log after it.
SAFETY_SECONDS = 5.0


def handle(reconciling: Reconciler, deadline: float | None = None) -> dict[str, Any]:
    """The seam tests call with their own reconciler."""
    return reconcile(reconciling, deadline)


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(scheduledAt=event.get("time"))
    remaining = context.get_remaining_time_in_millis() / 1000
    return handle(bootstrap.reconciler(), time.monotonic() + remaining - SAFETY_SECONDS)
