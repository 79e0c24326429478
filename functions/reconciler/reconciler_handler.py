"""ReconcilerFunction, every minute: expires holds past holdExpiresAt, matches orders
left waiting, batch after batch until nothing is due or the run's time is mostly
spent, and audits a slice of every line's counters against its orders, reporting
drift (never fixing it). What failed on one order or line is counted (``ReconcileFailures``,
in total and by ``kind``) and logged by ids, and the run goes on."""

import time
from collections import Counter
from dataclasses import asdict
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.clock import utc_now
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderIndexes
from fundrouter.service.matching import LineCatalog, MatchService
from fundrouter.service.reconciling import Reconciler
from fundrouter.settings import TableSettings

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)


@cache
def reconciler() -> Reconciler:
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    lines = DynamoLineRepository(client, settings.lines_table_name)
    matcher = MatchService(
        LineCatalog(lines), DynamoMatchStore(client, settings.orders_table_name, lines), utc_now
    )
    return Reconciler(
        DynamoOrderIndexes(client, settings.orders_table_name),
        lines,
        DynamoOrderEvents(client, settings.orders_table_name, lines),
        matcher,
        utc_now,
        audit=DynamoAudit(client, settings.orders_table_name, settings.lines_table_name),
    )


# Kept free of the run's budget: the summary, the metrics and the log after it.
SAFETY_SECONDS = 5.0


def handle(reconciling: Reconciler, deadline: float | None = None) -> dict[str, Any]:
    """The seam tests call with their own reconciler; `deadline` is a time.monotonic()
    reading after which the run starts nothing new."""
    report = reconciling.run(deadline)
    metrics.add_metric("ExpiredHolds", MetricUnit.Count, len(report.expired))
    metrics.add_metric("RedrivenOrders", MetricUnit.Count, len(report.redriven))
    metrics.add_metric("ExpiryBatches", MetricUnit.Count, report.batches)
    metrics.add_metric("LinesAudited", MetricUnit.Count, report.lines_audited)
    metrics.add_metric("AuditPassesCompleted", MetricUnit.Count, report.passes_completed)
    metrics.add_metric("OldestAuditSeconds", MetricUnit.Seconds, report.oldest_audit_seconds)
    metrics.add_metric("CounterDrift", MetricUnit.Count, sum(d.amount for d in report.drift))
    metrics.add_metric("ReconcileFailures", MetricUnit.Count, len(report.failures))
    for kind, failures in Counter(f.kind for f in report.failures).items():
        with single_metric(
            name="ReconcileFailures",
            unit=MetricUnit.Count,
            value=failures,
            namespace=METRICS_NAMESPACE,
        ) as metric:
            metric.add_dimension(name="kind", value=kind.value)
    for failure in report.failures:
        logger.error("reconcile failed", extra=asdict(failure))
    for line_id, percent in report.utilization.items():
        with single_metric(
            name="LineUtilization",
            unit=MetricUnit.Percent,
            value=percent,
            namespace=METRICS_NAMESPACE,
        ) as metric:
            metric.add_dimension(name="lineId", value=line_id)
    for drift in report.drift:
        logger.error("counter drift", extra=asdict(drift))
    summary = {
        "expired": report.expired,
        "redriven": report.redriven,
        "batches": report.batches,
        "linesAudited": report.lines_audited,
        "passesCompleted": report.passes_completed,
        "drift": [asdict(d) for d in report.drift],
        "failures": [asdict(f) for f in report.failures],
    }
    logger.info("reconciled", extra=summary)
    return summary


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(scheduledAt=event.get("time"))
    remaining = context.get_remaining_time_in_millis() / 1000
    return handle(reconciler(), time.monotonic() + remaining - SAFETY_SECONDS)
