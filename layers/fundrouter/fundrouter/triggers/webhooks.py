"""The WebhookFunction's triggers: its queue, which holds status changes (from the
orders bus, by a rule) and prompts for attempts (from earlier attempts, re-sends and
the sweep), and the scheduled sweep of the due index.

A batch fans every status change out to its deliveries first, then makes every
attempt at once, each on its own thread: one slow endpoint (a few seconds at most,
the sender's timeout) does not hold the others. A record fails, and comes back from
the queue, only when its fan-out or an attempt could not be stored.

Logs name tenants, endpoints, deliveries and orders, never a body or a secret."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from fundrouter import METRICS_NAMESPACE
from fundrouter.domain.webhooks import Delivery, DeliveryState
from fundrouter.service.tracking import EVENT_DETAIL_TYPE, OrderStatusChanged

if TYPE_CHECKING:
    from fundrouter.service.webhooks import WebhookDispatcher

logger = Logger(child=True)
metrics = Metrics(namespace=METRICS_NAMESPACE)  # the handler's buffer, flushed by it
MAX_THREADS: Final = 16


def keys_of(body: dict[str, Any], dispatcher: WebhookDispatcher) -> list[tuple[str, str]]:
    """The deliveries a message asks to attempt: a status change's, after fanning it
    out, or the one a prompt names."""
    if body.get("detail-type") == EVENT_DETAIL_TYPE:
        return dispatcher.fan_out(OrderStatusChanged.model_validate(body["detail"]))
    return [(str(body["endpointId"]), str(body["deliveryId"]))]


def report(delivery: Delivery | None) -> None:
    if delivery is None:  # not due, or another attempt holds it
        return
    last = delivery.attempts[-1] if delivery.attempts else None
    logger.info(
        "webhook attempt",
        extra={
            "tenantId": delivery.tenant_id,
            "endpointId": delivery.endpoint_id,
            "deliveryId": delivery.delivery_id,
            "orderId": delivery.order_id,
            "version": delivery.order_version,
            "state": delivery.state,
            "statusCode": None if last is None else last.status_code,
            "error": None if last is None else last.error,
        },
    )
    metrics.add_metric(f"Webhooks{delivery.state.title()}", MetricUnit.Count, 1)
    if delivery.state is DeliveryState.DEAD:
        logger.warning("webhook delivery dead-lettered", extra={"deliveryId": delivery.delivery_id})


def deliver_batch(event: dict[str, Any], dispatcher: WebhookDispatcher) -> dict[str, Any]:
    failed: set[str] = set()
    work: dict[str, list[tuple[str, str]]] = {}
    for record in event.get("Records") or []:
        message = str(record["messageId"])
        try:
            work[message] = keys_of(json.loads(record["body"]), dispatcher)
        except Exception:
            logger.exception("webhook message failed", extra={"messageId": message})
            failed.add(message)
    attempts: list[tuple[str, Future[Delivery | None]]] = []
    threads = max(1, min(MAX_THREADS, sum(len(keys) for keys in work.values())))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for message, keys in work.items():
            attempts += [(message, pool.submit(dispatcher.attempt, *key)) for key in keys]
    for message, future in attempts:
        try:
            report(future.result())
        except Exception:
            logger.exception("webhook attempt not stored", extra={"messageId": message})
            failed.add(message)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(failed)]}


def sweep(dispatcher: WebhookDispatcher) -> dict[str, Any]:
    prompted = dispatcher.sweep()
    metrics.add_metric("WebhooksDuePrompted", MetricUnit.Count, prompted)
    logger.info("webhook sweep", extra={"prompted": prompted})
    return {"prompted": prompted}
