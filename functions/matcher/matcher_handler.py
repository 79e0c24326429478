"""MatcherFunction: for each order the Orders stream shows waiting for a match (new,
or re-queued after a decline), claim a line's capacity atomically or mark it
UNMATCHED. Records fail independently (partial batch failures); a repeat delivery
finds the order moved on and changes nothing."""

from contextlib import suppress
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.clock import utc_now
from fundrouter.domain.orders import Order
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import order_from_item
from fundrouter.redaction import Undecodable
from fundrouter.service.matching import LineCatalog, MatchReport, MatchService
from fundrouter.settings import TableSettings
from pydantic import ValidationError

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def match_service() -> MatchService:
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    lines = DynamoLineRepository(client, settings.lines_table_name)
    store = DynamoMatchStore(client, settings.orders_table_name, lines)
    return MatchService(LineCatalog(lines), store, utc_now)


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


def handle(
    event: dict[str, Any], context: LambdaContext, service: MatchService
) -> PartialItemFailureResponse:
    """The seam tests call with their own service. The batch is decided first, in
    arrival order (runs of orders for one line claimed together); then each record is
    reported, and fails, on its own."""
    orders: dict[str, Order] = {}
    for raw in event.get("Records", []):
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


@logger.inject_lambda_context
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return handle(event, context, match_service())
