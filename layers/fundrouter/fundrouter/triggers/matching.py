"""The MatcherFunction's batch: decided first, in arrival order (runs of orders for
one line claimed together), then each record reported, and failed, on its own."""

from contextlib import suppress
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.orders import Order
from fundrouter.persistence.orders import order_from_item
from fundrouter.redaction import Undecodable
from fundrouter.service.matching import MatchReport, MatchService

logger = Logger(child=True)
metrics = Metrics(namespace=METRICS_NAMESPACE)  # the handler's buffer, flushed by it
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _position(record: DynamoDBRecord) -> str:
    return str(record.raw_event["dynamodb"]["SequenceNumber"])


def decode(record: DynamoDBRecord) -> Order:
    try:
        return order_from_item(record.raw_event["dynamodb"]["NewImage"])
    except ValidationError as error:
        # Without the pydantic text (or its chain), which quotes the customer's data.
        raise Undecodable(error) from None


def report_record(record: DynamoDBRecord, decided: dict[str, MatchReport | Exception]) -> None:
    """One record's outcome, decided with the batch: raised to fail it alone."""
    order = decode(record)
    report = decided[_position(record)]
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


def match_batch(
    event: dict[str, Any], context: LambdaContext, service: MatchService
) -> PartialItemFailureResponse:
    orders: dict[str, Order] = {}
    for raw in event.get("Records") or []:
        record = DynamoDBRecord(raw)
        with suppress(Undecodable):  # reported as its record's failure below
            orders[_position(record)] = decode(record)
    with service.batch():
        decided = dict(zip(orders, service.match_all(list(orders.values())), strict=True))
    return process_partial_response(
        event=event,
        record_handler=partial(report_record, decided=decided),
        processor=processor,
        context=context,
    )
