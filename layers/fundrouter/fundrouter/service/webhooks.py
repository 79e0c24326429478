"""Webhooks: a tenant's endpoints (WebhookService, behind the API) and their
deliveries (WebhookDispatcher, behind the WebhookFunction).

Every status change published on the bus reaches the WebhookFunction (a rule feeding
its queue); ``fan_out`` writes one delivery per endpoint of that order's tenant that
wants the event, keyed by the event, so a redelivered event writes nothing new. Each
``attempt`` leases the delivery, POSTs it signed, and logs the attempt on it: 2xx is
DELIVERED, anything else is due again after an exponential backoff (asked of the queue
with a delay when that is short, found by ``due`` on the index otherwise) until the
retry window has passed, then DEAD. The table is the truth; queue messages are only
prompts, and an attempt that finds nothing due does nothing."""

import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from fundrouter.domain.paging import Page
from fundrouter.domain.webhooks import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    MAX_ENDPOINTS_PER_TENANT,
    SIGNATURE_HEADER,
    Attempt,
    Delivery,
    DeliveryBusy,
    DeliveryNotFound,
    DeliveryState,
    Endpoint,
    EndpointRequest,
    EndpointSecret,
    RetryPolicy,
    WebhookEventType,
    WebhookLimitReached,
    WebhookNotFound,
    WebhookUrlRefused,
    delivery_id,
    event_id,
    signature_header,
    status_changed_body,
    url_problem,
)
from fundrouter.service.ports import AttemptQueue, WebhookSender, WebhookStore
from fundrouter.service.tracking import OrderStatusChanged

# An attempt that never reports (its function died) is due again after this.
LEASE: Final = timedelta(seconds=60)
# SQS delays a message at most 15 minutes; longer waits are found on the due index.
MAX_QUEUE_DELAY_SECONDS: Final = 900
Clock = Callable[[], datetime]


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Created:
    """An endpoint and its secret, which is shown this once."""

    endpoint: Endpoint
    secret: str


class WebhookService:
    def __init__(
        self, store: WebhookStore, queue: AttemptQueue, clock: Clock, allow_loopback: bool
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._allow_loopback = allow_loopback

    def create(self, tenant_id: str, request: EndpointRequest) -> Created:
        problem = url_problem(request.url, self._allow_loopback)
        if problem is not None:
            raise WebhookUrlRefused(problem)
        now, secret = self._clock(), new_secret()
        endpoint = Endpoint(
            endpoint_id=f"we_{secrets.token_hex(16)}",
            tenant_id=tenant_id,
            url=request.url,
            events=tuple(request.events),
            description=request.description,
            secrets=(EndpointSecret(secret, now),),
            created_at=now,
            updated_at=now,
        )
        if not self._store.add_endpoint(endpoint, MAX_ENDPOINTS_PER_TENANT):
            raise WebhookLimitReached
        return Created(endpoint, secret)

    def list(self, tenant_id: str) -> list[Endpoint]:
        return self._store.endpoints(tenant_id)

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        endpoint = self._store.endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        return endpoint

    def delete(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        """Its pending deliveries are cancelled when next due."""
        deleted = self._store.delete_endpoint(tenant_id, endpoint_id)
        if deleted is None:
            raise WebhookNotFound(endpoint_id)
        return deleted

    def rotate(self, tenant_id: str, endpoint_id: str, grace: timedelta) -> Created:
        secret = new_secret()
        for _ in range(3):  # a concurrent rotation moved the version: read again
            rotated = self.get(tenant_id, endpoint_id).rotated(secret, self._clock(), grace)
            if self._store.replace_endpoint(rotated):
                return Created(rotated, secret)
        raise DeliveryBusy(f"webhook endpoint {endpoint_id}")

    def deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        state: DeliveryState | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Delivery]:
        self.get(tenant_id, endpoint_id)  # another tenant's endpoint is not found
        return self._store.deliveries(endpoint_id, state, limit, cursor)

    def delivery(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery:
        self.get(tenant_id, endpoint_id)
        found = self._store.delivery(endpoint_id, delivery_id)
        if found is None:
            raise DeliveryNotFound(delivery_id)
        return found

    def resend(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery:
        """Due now with a fresh retry window, whatever it ended as."""
        resent = self.delivery(tenant_id, endpoint_id, delivery_id).resent(self._clock())
        if not self._store.resend(resent, self._clock()):
            raise DeliveryBusy(f"delivery {delivery_id}")
        self._queue.send([(endpoint_id, delivery_id)])
        return resent


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        queue: AttemptQueue,
        sender: WebhookSender,
        clock: Clock,
        *,
        policy: RetryPolicy,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._policy = policy
        self._jitter = jitter

    def fan_out(self, change: OrderStatusChanged) -> list[tuple[str, str]]:
        """The deliveries of one status change, one per endpoint of its tenant that
        wants it (written if new): the keys to attempt."""
        kind = WebhookEventType.ORDER_STATUS_CHANGED
        event = event_id(change.tenant_id, change.order_id, change.version)
        body = status_changed_body(
            tenant_id=change.tenant_id,
            order_id=change.order_id,
            version=change.version,
            status=change.to_status,
            previous=change.from_status,
            occurred_at=change.at,
        )
        now, keys = self._clock(), []
        for endpoint in self._store.endpoints(change.tenant_id):
            if not endpoint.wants(kind):
                continue
            delivery = Delivery(
                delivery_id=delivery_id(change.at, event),
                endpoint_id=endpoint.endpoint_id,
                tenant_id=change.tenant_id,
                event_id=event,
                event_type=kind,
                order_id=change.order_id,
                order_version=change.version,
                body=body,
                created_at=now,
                cycle_started_at=now,
                next_attempt_at=now,
            )
            self._store.add_delivery(delivery)  # already there: attempted if still due
            keys.append((endpoint.endpoint_id, delivery.delivery_id))
        return keys

    def attempt(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        """One attempt if the delivery is due and no other attempt holds it; the
        delivery as logged after it, or None when there was nothing to do."""
        delivery, now = self._store.delivery(endpoint_id, delivery_id), self._clock()
        if delivery is None or delivery.state is not DeliveryState.PENDING:
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None
        if not self._store.claim(delivery, now, now + LEASE):
            return None
        delivery = replace(delivery, leased_until=now + LEASE)
        endpoint = self._store.endpoint(delivery.tenant_id, endpoint_id)
        if endpoint is None:
            cancelled = delivery.cancelled(now)
            self._store.record(cancelled, delivery)
            return cancelled
        attempt = self._send(endpoint, delivery, now)
        logged = delivery.after(attempt, self._policy, self._jitter())
        if not self._store.record(logged, delivery):
            return None  # the lease ran out and another attempt took over
        if logged.next_attempt_at is not None:
            wait = (logged.next_attempt_at - self._clock()).total_seconds()
            if wait <= MAX_QUEUE_DELAY_SECONDS:
                self._queue.send([(endpoint_id, delivery_id)], max(0, math.ceil(wait)))
        return logged

    def _send(self, endpoint: Endpoint, delivery: Delivery, now: datetime) -> Attempt:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fundrouter-webhooks/1",
            SIGNATURE_HEADER: signature_header(
                endpoint.signing_secrets(now), int(now.timestamp()), body
            ),
            EVENT_ID_HEADER: delivery.event_id,
            DELIVERY_ID_HEADER: delivery.delivery_id,
        }
        return self._sender.post(endpoint.url, headers, body)

    def sweep(self, limit: int = 1000) -> int:
        """Prompt an attempt of every delivery due now (long waits, lost prompts,
        attempts that never reported): how many."""
        due = self._store.due(self._clock(), limit)
        self._queue.send(due)
        return len(due)
