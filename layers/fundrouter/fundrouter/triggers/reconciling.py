"""The ReconcilerFunction's run, every minute: expire holds past holdExpiresAt, match
orders left waiting, batch after batch until nothing is due or the run's time is
mostly spent, and audit a slice of every line's counters against its orders,
reporting drift (never fixing it). What failed on one order or line is counted
(``ReconcileFailures``, in total and by ``kind``) and logged by ids, and the run
goes on."""

from collections import Counter
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from fundrouter import METRICS_NAMESPACE
from fundrouter.service.reconciling import Reconciler

logger = Logger(child=True)
metrics = Metrics(namespace=METRICS_NAMESPACE)  # the handler's buffer, flushed by it


def _one(name: str, unit: MetricUnit, value: float, dimension: str, of: str) -> None:
    """A metric with a dimension of its own, flushed at once (single_metric)."""
    with single_metric(name=name, unit=unit, value=value, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name=dimension, value=of)


def reconcile(reconciler: Reconciler, deadline: float | None) -> dict[str, Any]:
    """One run and its summary; `deadline` is a time.monotonic() reading after which
    the run starts nothing new."""
    report = reconciler.run(deadline)
    metrics.add_metric("ExpiredHolds", MetricUnit.Count, len(report.expired))
    metrics.add_metric("RedrivenOrders", MetricUnit.Count, len(report.redriven))
    metrics.add_metric("ExpiryBatches", MetricUnit.Count, report.batches)
    metrics.add_metric("LinesAudited", MetricUnit.Count, report.lines_audited)
    metrics.add_metric("AuditPassesCompleted", MetricUnit.Count, report.passes_completed)
    metrics.add_metric("OldestAuditSeconds", MetricUnit.Seconds, report.oldest_audit_seconds)
    metrics.add_metric("CounterDrift", MetricUnit.Count, sum(d.amount for d in report.drift))
    metrics.add_metric("ReconcileFailures", MetricUnit.Count, len(report.failures))
    metrics.add_metric("ShardMoves", MetricUnit.Count, sum(report.rebalanced.values()))
    for kind, failures in Counter(f.kind for f in report.failures).items():
        _one("ReconcileFailures", MetricUnit.Count, failures, "kind", kind.value)
    for failure in report.failures:
        logger.error("reconcile failed", extra=asdict(failure))
    for line_id, percent in report.utilization.items():
        _one("LineUtilization", MetricUnit.Percent, percent, "lineId", line_id)
    for drift in report.drift:
        logger.error("counter drift", extra=asdict(drift))
    summary = {
        "expired": report.expired,
        "redriven": report.redriven,
        "batches": report.batches,
        "linesAudited": report.lines_audited,
        "passesCompleted": report.passes_completed,
        "drift": [asdict(d) for d in report.drift],
        "shardMoves": report.rebalanced,
        "failures": [asdict(f) for f in report.failures],
    }
    logger.info("reconciled", extra=summary)
    return summary
