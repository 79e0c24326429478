"""The API's bodies as typed models, written from openapi.json (components/schemas),
not imported from the service: the client must install and run without it.

Python names are snake_case; on the wire they are the API's camelCase. Fields a
newer API adds are ignored when reading (the contract only grows by adding), and a
request body carries only the fields that were set, so the server's defaults apply.
Money is integer minor units with its currency code, as everywhere in the API.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )

    def to_json(self) -> dict[str, Any]:
        """The body to send: camelCase, only the fields that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    MATCHED = "MATCHED"
    APPROVED = "APPROVED"
    DISBURSED = "DISBURSED"
    REPAID = "REPAID"
    UNMATCHED = "UNMATCHED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class EventType(StrEnum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    DISBURSED = "DISBURSED"
    REPAID = "REPAID"


class LineStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class Strategy(StrEnum):
    PRIORITY = "PRIORITY"
    LOWEST_COST = "LOWEST_COST"
    BEST_FIT = "BEST_FIT"
    WEIGHTED = "WEIGHTED"


# ---------------------------------------------------------------------- orders
class Customer(Model):
    id: str
    region: str | None = None
    credit_grade: str | None = None


class OrderRequest(Model):
    """POST /v1/orders. `order_id` is the idempotency key: the same order sent again
    answers 200 with the order as it stands, a different one with that id 409."""

    order_id: str
    amount: int
    currency: str
    term_months: int
    product: str
    customer: Customer
    metadata: dict[str, str] = Field(default_factory=dict)


class Candidate(Model):
    line_id: str
    outcome: str
    code: str | None = None
    reason: str | None = None


class Decision(Model):
    strategy: str
    candidates: list[Candidate]
    more: dict[str, int] = Field(default_factory=dict)
    reason: str | None = None


class HistoryEntry(Model):
    status: OrderStatus
    at: datetime
    line_id: str | None = None
    event: str | None = None
    amount: int | None = None


class OrderResource(Model):
    order_id: str
    tenant_id: str
    amount: int
    currency: str
    term_months: int
    product: str
    customer: Customer
    metadata: dict[str, str]
    status: OrderStatus
    line_id: str | None
    funder_id: str | None
    reserved: int = 0
    outstanding: int = 0
    hold_expires_at: datetime | None
    decision: Decision | None
    declined_line_ids: list[str]
    over_limit: bool = False
    history: list[HistoryEntry]
    history_total: int
    created_at: datetime
    updated_at: datetime
    version: int


class OrderPage(Model):
    items: list[OrderResource]
    next_cursor: str | None


class HistoryPage(Model):
    items: list[HistoryEntry]
    next_cursor: str | None


class OrderEvent(Model):
    """POST /v1/orders/{orderId}/events. `event_id` is the idempotency key."""

    event_id: str
    type: EventType
    amount: int | None = None
    reason: str | None = None
    line_id: str | None = None
    expected_version: int | None = None


# ---------------------------------------------------------------------- lines
class LineConfig(Model):
    """PUT /v1/lines/{lineId}. Empty rule lists mean "any"."""

    funder_id: str
    name: str
    currency: str
    limit: int
    daily_limit: int | None = None
    min_amount: int
    max_amount: int
    terms: list[int] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    credit_grades: list[str] = Field(default_factory=list)
    apr_bps: int
    priority: int
    weight: int
    hold_seconds: int
    active_from: datetime | None = None
    active_until: datetime | None = None
    status: LineStatus = LineStatus.ACTIVE
    timezone: str = "Asia/Shanghai"
    shards: int = 1  # capacity shard items (K) for a hot line, 1 to 32


class LinePatch(Model):
    """PATCH /v1/lines/{lineId}: only the fields set are sent (and changed)."""

    funder_id: str | None = None
    name: str | None = None
    currency: str | None = None
    limit: int | None = None
    daily_limit: int | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    terms: list[int] | None = None
    products: list[str] | None = None
    regions: list[str] | None = None
    credit_grades: list[str] | None = None
    apr_bps: int | None = None
    priority: int | None = None
    weight: int | None = None
    hold_seconds: int | None = None
    active_from: datetime | None = None
    active_until: datetime | None = None
    status: LineStatus | None = None
    timezone: str | None = None
    shards: int | None = None


class LineWarning(Model):
    code: str
    message: str


class LineResource(LineConfig):
    line_id: str
    reserved: int
    drawn: int
    available: int  # negative when the limit was lowered below what is held
    used_today: int
    available_today: int | None
    day: date
    orders: dict[str, int]  # orders holding capacity on the line now, by status
    warnings: list[LineWarning]
    config_version: int
    created_at: datetime
    updated_at: datetime
    # As the reconciler last measured them; GET /v1/lines/{lineId} only, else None.
    claims_per_minute: int | None = None
    suggested_shards: int | None = None


class LineList(Model):
    items: list[LineResource]


# ---------------------------------------------------------------------- routing
class RoutingPolicy(Model):
    """PUT /v1/tenants/{tenantId}/routing. No `line_ids`: every line."""

    strategy: Strategy
    line_ids: list[str] = Field(default_factory=list)


class RoutingResource(RoutingPolicy):
    tenant_id: str


# ---------------------------------------------------------------------- admin
class OrderKey(Model):
    tenant_id: str
    order_id: str


class RepublishedOrder(OrderKey):
    status: OrderStatus
    version: int


class FailedOrder(OrderKey):
    reason: str


class RepublishReport(Model):
    republished: list[RepublishedOrder]
    missing: list[OrderKey]
    failed: list[FailedOrder]
    letters: int
    more: bool  # the limit was reached: call again


class LineDrift(Model):
    reserved: int
    expected_reserved: int
    drawn: int
    expected_drawn: int
    orders: list[str]
    amount: int


class PassUnderWay(Model):
    started_at: str | None
    orders: int


class LineAudit(Model):
    line_id: str
    last_full_pass_at: str | None
    orders: int
    drift: LineDrift | None
    unconfirmed: LineDrift | None
    pass_under_way: PassUnderWay | None


class AuditReport(Model):
    items: list[LineAudit]


# ---------------------------------------------------------------------- webhooks
class WebhookEventType(StrEnum):
    ORDER_STATUS_CHANGED = "order.status_changed"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


class EndpointRequest(Model):
    """POST /v1/webhooks. `url`: https:// to a public host (http://127.0.0.1 on the
    local stack only)."""

    url: str
    events: list[WebhookEventType]
    description: str | None = None


class EndpointResource(Model):
    endpoint_id: str
    url: str
    events: list[WebhookEventType]
    description: str | None
    created_at: datetime
    updated_at: datetime
    secret_created_at: datetime
    previous_secret_expires_at: datetime | None  # until then the old secret signs too
    version: int


class EndpointCreated(Model):
    """The endpoint and its signing secret, which no other answer shows: keep it."""

    endpoint: EndpointResource
    secret: str = Field(repr=False)


class EndpointList(Model):
    items: list[EndpointResource]


class AttemptResource(Model):
    at: datetime
    duration_ms: int
    status_code: int | None  # None: no answer, `error` says why
    error: str | None


class StatusChangedBody(Model):
    """What a delivery of `order.status_changed` sends (verify_webhook checks it)."""

    id: str  # the same on every retry and re-send: de-duplicate on it
    type: WebhookEventType
    tenant_id: str
    order_id: str
    version: int  # the order's: apply a delivery only above the last version applied
    status: OrderStatus
    previous_status: OrderStatus | None
    occurred_at: str


class DeliveryResource(Model):
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: WebhookEventType
    order_id: str
    order_version: int
    state: DeliveryState
    next_attempt_at: datetime | None  # while PENDING: when it is due
    attempt_count: int  # every attempt made; `attempts` holds the newest 100
    attempts: list[AttemptResource]
    created_at: datetime
    finished_at: datetime | None
    payload: StatusChangedBody


class DeliveryPage(Model):
    items: list[DeliveryResource]
    next_cursor: str | None


# ---------------------------------------------------------------------- tenants
type TenantScope = Literal["fundrouter/orders.write", "fundrouter/orders.read"]
TENANT_SCOPES: tuple[TenantScope, ...] = ("fundrouter/orders.write", "fundrouter/orders.read")


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class TenantRequest(Model):
    """POST /v1/tenants. Unset `scopes`: both; `orders_per_minute` None: no quota."""

    name: str
    scopes: list[TenantScope] = Field(default_factory=lambda: list(TENANT_SCOPES))
    orders_per_minute: int | None = None


class TenantPatch(Model):
    """PATCH /v1/tenants/{tenantId}: only the fields set are sent (and changed);
    `orders_per_minute` set to None removes the quota."""

    name: str | None = None
    orders_per_minute: int | None = None


class TenantClient(Model):
    client_id: str
    created_at: datetime
    retires_at: datetime | None = None  # a rotation replaced it: refused from then on


class TenantResource(Model):
    tenant_id: str
    name: str
    status: TenantStatus
    scopes: list[TenantScope]
    orders_per_minute: int | None
    clients: list[TenantClient]  # the current one last
    created_at: datetime
    updated_at: datetime
    version: int


class TenantCredentials(Model):
    """A new client of the tenant: its secret is in this answer only."""

    tenant: TenantResource
    client_id: str
    client_secret: str = Field(repr=False)


class TenantPage(Model):
    items: list[TenantResource]
    next_cursor: str | None
