"""Webhooks: the endpoints a tenant registers, the signed body each delivery sends, and
when a failed delivery is tried again. Pure: no network, no clock, no randomness of
its own (the callers pass the time and the jitter)."""

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.errors import DomainError, FieldProblem, NotFound
from fundrouter.domain.orders import CamelModel, OrderStatus

MAX_ENDPOINTS_PER_TENANT: Final = 10
MAX_URL_LENGTH: Final = 2048
# A delivery keeps its newest attempts; attemptCount counts them all.
MAX_LOGGED_ATTEMPTS: Final = 100
DEFAULT_GRACE_SECONDS: Final = 24 * 3600
MAX_GRACE_SECONDS: Final = 7 * 24 * 3600
SIGNATURE_HEADER: Final = "Fundrouter-Signature"
EVENT_ID_HEADER: Final = "Fundrouter-Event-Id"
DELIVERY_ID_HEADER: Final = "Fundrouter-Delivery-Id"
ENDPOINT_ID_PATTERN: Final = r"^we_[0-9a-f]{32}$"
DELIVERY_ID_PATTERN: Final = r"^dlv_[0-9]{17}_[0-9a-f]{32}$"
# Names that resolve to this machine or a private network wherever they are looked up.
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


class WebhookEventType(StrEnum):
    """What an endpoint can subscribe to; more types join this list later."""

    ORDER_STATUS_CHANGED = "order.status_changed"


class DeliveryState(StrEnum):
    PENDING = "PENDING"  # due at nextAttemptAt
    DELIVERED = "DELIVERED"  # the endpoint answered 2xx
    DEAD = "DEAD"  # still failing after the retry window: parked, re-sendable
    CANCELLED = "CANCELLED"  # its endpoint was deleted


def _unique[T](values: list[T]) -> list[T]:
    if len(set(values)) != len(values):
        raise ValueError("entries must be unique")
    return values


class EndpointRequest(CamelModel):
    """The body of POST /v1/webhooks."""

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]
    events: Annotated[
        list[WebhookEventType], Field(min_length=1, max_length=16), AfterValidator(_unique)
    ] = Field(description="The event types to deliver: today only `order.status_changed`.")
    description: Annotated[str, StringConstraints(max_length=256)] | None = None


class RotateRequest(CamelModel):
    """The body of POST /v1/webhooks/{endpointId}/secret/rotate."""

    grace_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS, strict=True)] = Field(
        default=DEFAULT_GRACE_SECONDS,
        description="How long the old secret still signs deliveries (0: not at all).",
    )


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    what = "webhook endpoint"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    what = "delivery"


class WebhookLimitReached(DomainError):
    code = "webhook_limit_reached"

    def __init__(self) -> None:
        super().__init__(
            f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints",
            (FieldProblem("url", f"at most {MAX_ENDPOINTS_PER_TENANT} endpoints: delete one"),),
        )


class WebhookUrlRefused(DomainError):
    code = "validation_failed"

    def __init__(self, why: str) -> None:
        super().__init__("request failed validation", (FieldProblem("url", why),))


class DeliveryBusy(DomainError):
    """An attempt holds the delivery, or concurrent rotations moved the endpoint."""

    code = "delivery_busy"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is changing right now; retry shortly")


# ---------------------------------------------------------------- addresses


def address_allowed(address: str, allow_loopback: bool) -> bool:
    """Deployed, only public addresses: never private, link-local (cloud metadata),
    loopback, multicast or reserved ones (SSRF). The local stack (`allow_loopback`)
    delivers to 127.0.0.1 and nowhere else: it never reaches out of the machine."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_loopback:
        return ip == ipaddress.IPv4Address("127.0.0.1")
    return ip.is_global and not ip.is_multicast


def url_problem(url: str, allow_loopback: bool) -> str | None:
    """Why an endpoint URL is refused, or None. A host name is checked again, by its
    addresses, on every delivery (fundrouter.persistence.webhook_sender)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    host = (parts.hostname or "").lower()
    loopback = allow_loopback and host == "127.0.0.1"
    refusals = {
        "must be an https:// URL": parts.scheme != "https"
        and not (parts.scheme == "http" and loopback),
        "has no host": not host,
        "must not carry a user name or password": parts.username is not None
        or parts.password is not None,
        "must not have a fragment": bool(parts.fragment),
        "port 0 is not a port": port == 0,
        "the local stack delivers to 127.0.0.1 only": allow_loopback and not loopback,
    }
    first = next((why for why, refused in refusals.items() if refused), None)
    return first or _host_problem(host, allow_loopback)


def _host_problem(host: str, allow_loopback: bool) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host
        return "must name a public host" if local else None
    if not address_allowed(host, allow_loopback):
        return "must not be a private, loopback or link-local address"
    return None


# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class EndpointSecret:
    secret: str
    created_at: datetime
    expires_at: datetime | None = None  # None: the current one


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    tenant_id: str
    url: str
    events: tuple[WebhookEventType, ...]
    description: str | None
    secrets: tuple[EndpointSecret, ...]  # the current one first
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def wants(self, event_type: WebhookEventType) -> bool:
        return event_type in self.events

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, then each old one still inside its grace period."""
        return [s.secret for s in self.secrets if s.expires_at is None or s.expires_at > now]

    def rotated(self, secret: str, now: datetime, grace: timedelta) -> Self:
        """A new current secret; the old current one signs until now + grace, and the
        ones whose grace ended are dropped."""
        old = [
            s if s.expires_at is not None else replace(s, expires_at=now + grace)
            for s in self.secrets
        ]
        kept = tuple(s for s in old if s.expires_at is not None and s.expires_at > now)
        return replace(
            self,
            secrets=(EndpointSecret(secret, now), *kept),
            updated_at=now,
            version=self.version + 1,
        )


# ---------------------------------------------------------------- events and signatures


def event_id(tenant_id: str, order_id: str, version: int) -> str:
    """The same for every redelivery of one status change: (tenant, order, version)
    names it (fundrouter.service.tracking)."""
    digest = hashlib.sha256(f"{tenant_id}\n{order_id}\n{version}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def delivery_id(occurred_at: datetime, event: str) -> str:
    """Sorts by the event's time, so an endpoint's deliveries list newest first."""
    millis = f"{occurred_at.strftime('%Y%m%d%H%M%S')}{occurred_at.microsecond // 1000:03d}"
    return f"dlv_{millis}_{event.removeprefix('evt_')}"


class StatusChangedBody(CamelModel):
    """What a delivery of `order.status_changed` sends (docs/api.md)."""

    id: str
    type: WebhookEventType
    tenant_id: str
    order_id: str
    version: int = Field(description="The order's version: receivers order deliveries by it.")
    status: OrderStatus
    previous_status: OrderStatus | None
    occurred_at: str


def status_changed_body(
    *,
    tenant_id: str,
    order_id: str,
    version: int,
    status: OrderStatus,
    previous: OrderStatus | None,
    occurred_at: datetime,
) -> str:
    body = StatusChangedBody(
        id=event_id(tenant_id, order_id, version),
        type=WebhookEventType.ORDER_STATUS_CHANGED,
        tenant_id=tenant_id,
        order_id=order_id,
        version=version,
        status=status,
        previous_status=previous,
        occurred_at=format_timestamp(occurred_at),
    )
    return json.dumps(body.model_dump(mode="json", by_alias=True), separators=(",", ":"))


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`: one HMAC-SHA256 of `t.` + the raw
    body per secret, so a receiver holding either secret of a rotation verifies."""
    signed = f"{timestamp}.".encode() + body
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={d}" for d in digests)])


# ---------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter: failure n waits between half and all of
    min(max, base * 2^(n-1)). A delivery is retried until an attempt fails `window`
    after its first one (so for at least that long), then parked as DEAD."""

    base_seconds: float = 30
    max_seconds: float = 3600
    window_seconds: float = 24 * 3600

    def delay(self, failures: int, jitter: float) -> timedelta:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, failures - 1))
        return timedelta(seconds=ceiling / 2 + jitter * ceiling / 2)

    def next_attempt(
        self, started: datetime, now: datetime, failures: int, jitter: float
    ) -> datetime | None:
        """When to try again after the `failures`-th failure in a row, None: give up."""
        if now - started >= timedelta(seconds=self.window_seconds):
            return None
        return now + self.delay(failures, jitter)


# ---------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Attempt:
    at: datetime
    duration_ms: int
    status_code: int | None = None  # None: no answer (error says why)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint, with the body every attempt sends unchanged."""

    delivery_id: str
    endpoint_id: str
    tenant_id: str
    event_id: str
    event_type: WebhookEventType
    order_id: str
    order_version: int
    body: str
    created_at: datetime
    cycle_started_at: datetime  # created, or last re-sent: the retry window runs from it
    state: DeliveryState = DeliveryState.PENDING
    next_attempt_at: datetime | None = None
    attempts: tuple[Attempt, ...] = ()  # the newest MAX_LOGGED_ATTEMPTS, oldest first
    attempt_count: int = 0
    failures: int = 0  # in a row, in this cycle
    finished_at: datetime | None = None
    leased_until: datetime | None = field(default=None, compare=False)

    @property
    def payload(self) -> StatusChangedBody:
        return StatusChangedBody.model_validate_json(self.body)

    def after(self, attempt: Attempt, policy: RetryPolicy, jitter: float) -> Self:
        """The delivery once `attempt` is logged: delivered, due again, or dead."""
        logged = (*self.attempts, attempt)[-MAX_LOGGED_ATTEMPTS:]
        done = replace(self, attempts=logged, attempt_count=self.attempt_count + 1)
        if attempt.succeeded:
            return replace(
                done, state=DeliveryState.DELIVERED, next_attempt_at=None, finished_at=attempt.at
            )
        failures = self.failures + 1
        due = policy.next_attempt(self.cycle_started_at, attempt.at, failures, jitter)
        if due is None:
            return replace(
                done,
                state=DeliveryState.DEAD,
                failures=failures,
                next_attempt_at=None,
                finished_at=attempt.at,
            )
        return replace(done, failures=failures, next_attempt_at=due)

    def resent(self, now: datetime) -> Self:
        """Due now, with a new retry window, whatever it ended as."""
        return replace(
            self,
            state=DeliveryState.PENDING,
            next_attempt_at=now,
            cycle_started_at=now,
            failures=0,
            finished_at=None,
        )

    def cancelled(self, now: datetime) -> Self:
        return replace(self, state=DeliveryState.CANCELLED, next_attempt_at=None, finished_at=now)
