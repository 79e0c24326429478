"""WebhookFunction: signs and delivers each status change to the endpoints its tenant
registered, retrying with backoff for at least a day (fundrouter.triggers.webhooks).
From its queue: status changes (fanned out to deliveries) and prompts for attempts;
every minute: the sweep of deliveries due on the index.

Metrics (namespace ``fundrouter``): ``WebhooksDelivered``, ``WebhooksPending`` (an
attempt failed, another is due), ``WebhooksDead``, ``WebhooksCancelled``,
``WebhooksDuePrompted``."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from fundrouter import METRICS_NAMESPACE, bootstrap
from fundrouter.triggers.webhooks import deliver_batch, sweep

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    dispatcher = bootstrap.webhook_dispatcher()
    if "Records" in event:  # the queue
        return deliver_batch(event, dispatcher)
    return sweep(dispatcher)  # the schedule
