"""ApiFunction: the HTTP API's single Lambda. Parsing, routing and error shapes live
in fundrouter.http; this module wires them to AWS."""

from datetime import timedelta
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.clock import utc_now
from fundrouter.http.app import build_app
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.eventbus import EventBridgePublisher, SqsDeadLetters
from fundrouter.persistence.history import DynamoOrderHistory
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.persistence.retries import transient
from fundrouter.service.auditing import AuditReport
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.orders import OrderHistoryService, OrderService
from fundrouter.service.tracking import StatusEventRepublisher
from fundrouter.settings import EventBusSettings, LifecycleSettings, TableSettings

logger = Logger()
# Only botocore is called: patch_all would import and patch requests, sqlite3, ...
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=METRICS_NAMESPACE)
app = build_app(transient)


@cache
def order_service() -> OrderService:
    """Built on first use, once per container, so importing this module stays cheap
    and a missing setting fails loudly on the first request."""
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    return OrderService(DynamoOrderRepository(client, settings.orders_table_name), utc_now)


@cache
def history_service() -> OrderHistoryService:
    settings = TableSettings.from_env()
    return OrderHistoryService(
        DynamoOrderHistory(boto3.client("dynamodb"), settings.orders_table_name)
    )


@cache
def line_service() -> LineService:
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    return LineService(DynamoLineRepository(client, settings.lines_table_name), utc_now)


@cache
def event_service() -> OrderEventService:
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    lines = DynamoLineRepository(client, settings.lines_table_name)
    store = DynamoOrderEvents(client, settings.orders_table_name, lines)
    grace = timedelta(seconds=LifecycleSettings.from_env().late_disburse_grace_seconds)
    return OrderEventService(store, utc_now, grace)


@cache
def republisher() -> StatusEventRepublisher:
    tables = TableSettings.from_env()
    bus = EventBusSettings.from_env()
    return StatusEventRepublisher(
        DynamoOrderRepository(boto3.client("dynamodb"), tables.orders_table_name),
        EventBridgePublisher(boto3.client("events"), bus.event_bus_name),
        SqsDeadLetters(boto3.client("sqs"), bus.unpublished_events_queue_url),
    )


@cache
def audit_report() -> AuditReport:
    settings = TableSettings.from_env()
    client = boto3.client("dynamodb")
    lines = DynamoLineRepository(client, settings.lines_table_name)
    return AuditReport(
        lambda: [record.line.line_id for record in lines.list_lines()],
        DynamoAudit(client, settings.orders_table_name, settings.lines_table_name),
    )


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    orders: OrderService,
    lines: LineService | None = None,
    events: OrderEventService | None = None,
    *,
    republishing: StatusEventRepublisher | None = None,
    history: OrderHistoryService | None = None,
    auditing: AuditReport | None = None,
) -> dict[str, Any]:
    """The seam tests call with their own services."""
    app.append_context(
        orders=orders,
        lines=lines,
        events=events,
        republisher=republishing,
        history=history,
        audit=auditing,
    )
    return app.resolve(event, context)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
# Responses and errors stay out of X-Ray: they may carry customer data.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(
        event,
        context,
        order_service(),
        line_service(),
        event_service(),
        republishing=republisher(),
        history=history_service(),
        auditing=audit_report(),
    )
