"""The two functions on the Orders stream.

The MatcherFunction's batch is decided first, in arrival order (runs of orders for
one line claimed together), then each record is reported, and failed, on its own.

The TrackerFunction's batch: every record decoded, every change published together
(10 entries per PutEvents call, refused entries sent again a few times), what was
not published dead-lettered together with its order's identity; then each record
is settled from what happened. Only a record that could be neither published nor
dead-lettered fails, and is redelivered by the stream.

Each record settled on its own, failures reported by sequence number, a batch whose
every record failed raised (so Lambda retries and bisects it): what Powertools'
BatchProcessor does for a DynamoDB stream, here in a few lines, because importing it
loads every event source's data classes and asyncio, a fifth of a cold start.

Logs name tenants, orders and error kinds, never an order's content."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from pydantic import ValidationError

from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.orders import Order
from fundrouter.persistence.orders import order_from_item, order_ids
from fundrouter.redaction import Undecodable, describe
from fundrouter.service.ports import DeadLetterSink, StatusEventPublisher
from fundrouter.service.tracking import (
    OrderStatusChanged,
    Skip,
    Unpublished,
    figures,
    publish_changes,
    skip_before_decoding,
    status_change,
)

if TYPE_CHECKING:  # the tracker does not load the matcher's service
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from fundrouter.service.matching import MatchReport, MatchService

logger = Logger(child=True)
metrics = Metrics(namespace=METRICS_NAMESPACE)  # the handler's buffer, flushed by it

Record = dict[str, Any]


def record_key(raw: dict[str, Any]) -> str:
    """The record's identity in the batch: its sequence number, as reported."""
    return str((raw.get("dynamodb") or {}).get("SequenceNumber") or raw.get("eventID"))


def settle_each(
    records: list[Record], settle: Callable[[Record], None]
) -> PartialItemFailureResponse:
    """`settle` on every record; the ones it raised on are the batch's failures."""
    failed: list[Any] = []
    for record in records:
        try:
            settle(record)
        except Exception:
            failed.append((record, sys.exc_info()))
    if failed and len(failed) == len(records):
        # Only a batch that failed whole loads the batch utility.
        from aws_lambda_powertools.utilities.batch.exceptions import (  # noqa: PLC0415
            BatchProcessingError,
        )

        raise BatchProcessingError(
            msg=f"All records failed processing. {len(failed)} individual errors logged"
            " separately below.",
            child_exceptions=[info for _, info in failed],
        )
    return {"batchItemFailures": [{"itemIdentifier": record_key(record)} for record, _ in failed]}


# ---------------------------------------------------------------- matching


def _position(record: Record) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def decode(record: Record) -> Order:
    try:
        return order_from_item(record["dynamodb"]["NewImage"])
    except ValidationError as error:
        # Without the pydantic text (or its chain), which quotes the customer's data.
        raise Undecodable(error) from None


def report_record(
    record: Record, orders: dict[str, Order], decided: dict[str, MatchReport | Exception]
) -> None:
    """One record's outcome, decided with the batch: raised to fail it alone."""
    position = _position(record)
    order = orders[position] if position in orders else decode(record)  # raises: undecodable
    report = decided[position]
    if isinstance(report, Exception):
        raise report
    logger.info(
        "match",
        extra={
            "orderId": order.order_id,
            "tenantId": order.tenant_id,
            "outcome": report.outcome,
            "lineId": report.line_id,
            "attempts": report.attempts,
        },
    )
    metrics.add_metric(f"Orders{report.outcome.title().replace('_', '')}", MetricUnit.Count, 1)
    metrics.add_metric("ClaimAttempts", MetricUnit.Count, report.attempts)


def match_batch(event: dict[str, Any], service: MatchService) -> PartialItemFailureResponse:
    records: list[Record] = event.get("Records") or []
    orders: dict[str, Order] = {}
    for record in records:
        with suppress(Undecodable):  # reported as its record's failure below
            orders[_position(record)] = decode(record)
    with service.batch():
        decided = dict(zip(orders, service.match_all(list(orders.values())), strict=True))
    return settle_each(records, partial(report_record, orders=orders, decided=decided))


# ---------------------------------------------------------------- tracking


class NotPublished(Exception):
    """Neither published nor dead-lettered: fail the record so it is redelivered."""


def change_of(raw: dict[str, Any]) -> OrderStatusChanged | Skip:
    stream = raw["dynamodb"]
    skipped = skip_before_decoding(raw["eventName"], stream["Keys"]["sk"]["S"])
    if skipped is not None:
        return skipped
    old_image = stream.get("OldImage")
    if raw["eventName"] == "MODIFY" and old_image is None:
        raise ValueError("MODIFY without OldImage: the stream must carry NEW_AND_OLD_IMAGES")
    old = None if old_image is None else order_from_item(old_image)
    return status_change(old, order_from_item(stream["NewImage"]))


def undecodable(raw: dict[str, Any], error: Exception) -> Unpublished | None:
    """The letter for a record that did not decode, from its keys; None without them."""
    keys = (raw.get("dynamodb") or {}).get("Keys") or {}
    pk = (keys.get("pk") or {}).get("S")
    ids = order_ids(pk) if isinstance(pk, str) else None
    if ids is None:
        return None
    return Unpublished(tenant_id=ids[0], order_id=ids[1], reason=describe(error))


class TrackedBatch:
    """Step one of a batch: every record decoded, every change published together,
    what was not published dead-lettered together. Step two, settle_each,
    settles each record from what happened here."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        publisher: StatusEventPublisher,
        sink: DeadLetterSink,
    ) -> None:
        self.skipped: dict[str, Skip] = {}
        self.failed: dict[str, str] = {}
        changes: dict[str, OrderStatusChanged] = {}
        letters: dict[str, Unpublished] = {}
        for raw in records:
            key = record_key(raw)
            try:
                outcome = change_of(raw)
            except Exception as error:  # a malformed record is dead-lettered alone
                letter = undecodable(raw, error)
                if letter is None:
                    self.failed[key] = describe(error)
                else:
                    letters[key] = letter
                continue
            if isinstance(outcome, Skip):
                self.skipped[key] = outcome
            else:
                changes[key] = outcome
        refused = publish_changes(publisher, changes)
        self.published = {k: c for k, c in changes.items() if k not in refused}
        letters |= {
            key: Unpublished(
                tenant_id=changes[key].tenant_id,
                order_id=changes[key].order_id,
                version=changes[key].version,
                reason=reason,
            )
            for key, reason in refused.items()
        }
        keys = list(letters)
        not_stored = {keys[i] for i in sink.send([letters[k] for k in keys])}
        self.failed |= {k: f"not dead-lettered: {letters[k].reason}" for k in not_stored}
        self.dead_lettered = {k: v for k, v in letters.items() if k not in not_stored}

    def settle(self, record: Record) -> None:
        key = record_key(record)
        if key in self.failed:
            logger.warning("record failed", extra={"record": key, "reason": self.failed[key]})
            raise NotPublished(self.failed[key])
        if key in self.dead_lettered:
            letter = self.dead_lettered[key]
            logger.warning(
                "status event dead-lettered",
                extra={"record": key, "tenantId": letter.tenant_id, "orderId": letter.order_id}
                | {"version": letter.version, "reason": letter.reason},
            )
            return
        if key in self.skipped:
            logger.debug("skipped", extra={"record": key, "reason": self.skipped[key]})
            return
        change = self.published[key]
        logger.info(
            "status change published",
            extra={"record": key, "tenantId": change.tenant_id, "orderId": change.order_id}
            | {"from": change.from_status, "to": change.to_status, "version": change.version},
        )


def count(published: list[OrderStatusChanged], dead_lettered: int) -> None:
    """Namespace ``fundrouter``: ``OrdersByStatus`` [status], ``MatchedOrders`` and
    ``MatchedVolume`` (minor units) [lineId], ``MatchedOrders`` / ``UnmatchedOrders``
    (the unmatched rate) and ``StatusEventsDeadLettered``."""
    summary = figures(published)
    metrics.add_metric("StatusEventsDeadLettered", MetricUnit.Count, dead_lettered)
    metrics.add_metric("MatchedOrders", MetricUnit.Count, summary.matched)
    metrics.add_metric("UnmatchedOrders", MetricUnit.Count, summary.unmatched)
    for status, orders in summary.by_status.items():
        with single_metric(
            name="OrdersByStatus", unit=MetricUnit.Count, value=orders, namespace=METRICS_NAMESPACE
        ) as metric:
            metric.add_dimension("status", status.value)
    for line_id, line in summary.matched_by_line.items():
        per_line = EphemeralMetrics(namespace=METRICS_NAMESPACE)
        per_line.add_dimension("lineId", line_id)
        per_line.add_metric("MatchedOrders", MetricUnit.Count, line.orders)
        per_line.add_metric("MatchedVolume", MetricUnit.Count, line.volume)
        per_line.flush_metrics()


def track_batch(
    event: dict[str, Any],
    publisher: StatusEventPublisher,
    sink: DeadLetterSink,
) -> PartialItemFailureResponse:
    records: list[Record] = event.get("Records") or []
    batch = TrackedBatch(records, publisher, sink)
    count(list(batch.published.values()), len(batch.dead_lettered))
    return settle_each(records, batch.settle)
