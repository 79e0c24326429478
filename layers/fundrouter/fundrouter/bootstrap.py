"""The one place services are built: from the environment's settings and one boto3
client per AWS service, once per container, each on first use. A missing setting
fails loudly on the first request that needs it.

The builders import their adapters inside, so a function loads only the persistence
it calls (a handler imports this module whatever it does: the matcher does not pay
for the API's event bus). Routes receive these services through Powertools'
``Depends``; tests override them (``app.dependency_overrides``)."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fundrouter.http.tokens import TokenVerifier
    from fundrouter.persistence.eventbus import EventBridgePublisher, SqsDeadLetters
    from fundrouter.persistence.lines import DynamoLineRepository
    from fundrouter.persistence.tenants import DynamoTenantStore
    from fundrouter.service.auditing import AuditService
    from fundrouter.service.lifecycle import OrderEventService
    from fundrouter.service.lines import LineService
    from fundrouter.service.matching import MatchService
    from fundrouter.service.orders import OrderHistoryService, OrderService
    from fundrouter.service.reconciling import Reconciler
    from fundrouter.service.tenants import TenantGate, TenantService
    from fundrouter.service.tracking import StatusEventRepublisher
    from fundrouter.service.webhooks import WebhookDispatcher, WebhookService
    from fundrouter.settings import (
        EventBusSettings,
        TableSettings,
        TenantSettings,
        WebhookSettings,
    )

# ruff: noqa: PLC0415 (imports inside the builders: see the module's docstring)


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # botocore's client-side check of every parameter took 40% of a matcher batch's
    # CPU (a 45-order transaction is ~5,000 values); the requests are built by the
    # adapters, and AWS validates them again anyway (decision 33).
    return boto3.client(service, config=Config(parameter_validation=False))  # type: ignore[call-overload]


@cache
def tables() -> TableSettings:
    from fundrouter.settings import TableSettings

    return TableSettings.from_env()


@cache
def bus() -> EventBusSettings:
    from fundrouter.settings import EventBusSettings

    return EventBusSettings.from_env()


@cache
def line_repository() -> DynamoLineRepository:
    from fundrouter.persistence.lines import DynamoLineRepository

    return DynamoLineRepository(client("dynamodb"), tables().lines_table_name)


@cache
def order_service() -> OrderService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.persistence.orders import DynamoOrderRepository
    from fundrouter.service.orders import OrderService

    orders = DynamoOrderRepository(client("dynamodb"), tables().orders_table_name)
    return OrderService(orders, utc_now)


@cache
def history_service() -> OrderHistoryService:
    from fundrouter.persistence.history import DynamoOrderHistory
    from fundrouter.service.orders import OrderHistoryService

    return OrderHistoryService(DynamoOrderHistory(client("dynamodb"), tables().orders_table_name))


@cache
def line_service() -> LineService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.service.lines import LineService

    return LineService(line_repository(), utc_now)


@cache
def event_service() -> OrderEventService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.persistence.lifecycle import DynamoOrderEvents
    from fundrouter.service.lifecycle import OrderEventService
    from fundrouter.settings import LifecycleSettings

    store = DynamoOrderEvents(client("dynamodb"), tables().orders_table_name, line_repository())
    grace = timedelta(seconds=LifecycleSettings.from_env().late_disburse_grace_seconds)
    return OrderEventService(store, utc_now, grace)


@cache
def event_publisher() -> EventBridgePublisher:
    from fundrouter.persistence.eventbus import EventBridgePublisher

    return EventBridgePublisher(client("events"), bus().event_bus_name)


@cache
def dead_letters() -> SqsDeadLetters:
    from fundrouter.persistence.eventbus import SqsDeadLetters

    return SqsDeadLetters(client("sqs"), bus().unpublished_events_queue_url)


@cache
def republisher() -> StatusEventRepublisher:
    from fundrouter.persistence.orders import DynamoOrderRepository
    from fundrouter.service.tracking import StatusEventRepublisher

    orders = DynamoOrderRepository(client("dynamodb"), tables().orders_table_name)
    return StatusEventRepublisher(orders, event_publisher(), dead_letters())


@cache
def audit_report() -> AuditService:
    from fundrouter.persistence.audit import DynamoAudit
    from fundrouter.service.auditing import AuditService

    settings = tables()
    audit = DynamoAudit(client("dynamodb"), settings.orders_table_name, settings.lines_table_name)
    return AuditService(lambda: [r.line.line_id for r in line_repository().list_lines()], audit)


@cache
def match_service() -> MatchService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.persistence.matching import DynamoMatchStore
    from fundrouter.service.matching import LineCatalog, MatchService

    lines = line_repository()
    store = DynamoMatchStore(client("dynamodb"), tables().orders_table_name, lines)
    return MatchService(LineCatalog(lines), store, utc_now)


@cache
def reconciler() -> Reconciler:
    from fundrouter.domain.clock import utc_now
    from fundrouter.persistence.audit import DynamoAudit
    from fundrouter.persistence.lifecycle import DynamoOrderEvents
    from fundrouter.persistence.orders import DynamoOrderIndexes
    from fundrouter.service.reconciling import Reconciler

    settings, dynamodb, lines = tables(), client("dynamodb"), line_repository()
    return Reconciler(
        DynamoOrderIndexes(dynamodb, settings.orders_table_name),
        lines,
        DynamoOrderEvents(dynamodb, settings.orders_table_name, lines),
        match_service(),
        utc_now,
        audit=DynamoAudit(dynamodb, settings.orders_table_name, settings.lines_table_name),
    )


@cache
def webhook_settings() -> WebhookSettings:
    from fundrouter.settings import WebhookSettings

    return WebhookSettings.from_env()


def _webhook_store_and_queue() -> tuple[Any, Any]:
    from fundrouter.persistence.webhooks import DynamoWebhookStore, SqsAttemptQueue

    settings = webhook_settings()
    return (
        DynamoWebhookStore(client("dynamodb"), settings.webhooks_table_name),
        SqsAttemptQueue(client("sqs"), settings.webhook_queue_url),
    )


@cache
def webhook_service() -> WebhookService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.service.webhooks import WebhookService

    store, queue = _webhook_store_and_queue()
    return WebhookService(store, queue, utc_now, webhook_settings().allow_loopback_http)


@cache
def webhook_dispatcher() -> WebhookDispatcher:
    from fundrouter.domain.clock import utc_now
    from fundrouter.domain.webhooks import RetryPolicy
    from fundrouter.persistence.webhook_sender import HttpWebhookSender
    from fundrouter.service.webhooks import WebhookDispatcher

    settings = webhook_settings()
    store, queue = _webhook_store_and_queue()
    sender = HttpWebhookSender(settings.timeout_seconds, settings.allow_loopback_http)
    policy = RetryPolicy(
        settings.retry_base_seconds, settings.retry_max_seconds, settings.retry_window_seconds
    )
    return WebhookDispatcher(store, queue, sender, utc_now, policy=policy)


def tenant_settings() -> TenantSettings:
    from fundrouter.settings import TenantSettings

    return TenantSettings.from_env()


@cache
def tenant_store() -> DynamoTenantStore:
    from fundrouter.persistence.tenants import DynamoTenantStore

    return DynamoTenantStore(client("dynamodb"), tenant_settings().tenants_table_name)


@cache
def tenant_service() -> TenantService:
    from fundrouter.domain.clock import utc_now
    from fundrouter.persistence.tenants import CognitoClients
    from fundrouter.service.tenants import TenantService

    clients = CognitoClients(client("cognito-idp"), tenant_settings().user_pool_id)
    return TenantService(tenant_store(), clients, utc_now)


@cache
def tenant_gate() -> TenantGate:
    from fundrouter.domain.clock import utc_now
    from fundrouter.service.tenants import TenantGate

    return TenantGate(tenant_store(), utc_now)


@cache
def token_verifier() -> TokenVerifier:
    from fundrouter.http.tokens import TokenVerifier, fetch_jwks

    settings = tenant_settings()
    return TokenVerifier(settings.issuer, lambda: fetch_jwks(settings.jwks_url))
