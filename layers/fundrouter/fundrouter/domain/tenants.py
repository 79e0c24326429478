"""Tenants: the business systems that call the API, each an OAuth2 client-credentials
client of the stack's user pool (decision 30). A tenant's id is its first client's id,
so its orders keep their key when a rotation gives it a new client. A pool client
without a tenant record (the template's own clients) is a built-in tenant: active,
without a quota, under its own client id."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import Field, StrictInt, StringConstraints

from fundrouter.domain.clock import Timestamp
from fundrouter.domain.errors import DomainError, FieldProblem, NotFound
from fundrouter.domain.orders import CamelModel

TenantScope = Literal["fundrouter/orders.write", "fundrouter/orders.read"]
TENANT_SCOPES: Final[tuple[TenantScope, ...]] = (
    "fundrouter/orders.write",
    "fundrouter/orders.read",
)
# One tenant's quota counter is one item: about 1,000 writes a second at most.
MAX_ORDERS_PER_MINUTE: Final = 60_000
MAX_GRACE_SECONDS: Final = 7 * 24 * 3600
DEFAULT_GRACE_SECONDS: Final = 3600  # the clients' tokens last an hour
TenantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 ._-]{1,64}$")]
OrdersPerMinute = Annotated[StrictInt, Field(ge=1, le=MAX_ORDERS_PER_MINUTE)]


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class TenantRequest(CamelModel):
    """The body of POST /v1/tenants."""

    name: TenantName
    scopes: Annotated[list[TenantScope], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: list(TENANT_SCOPES)
    )
    orders_per_minute: OrdersPerMinute | None = Field(
        default=None, description="Orders per minute the tenant may submit; null: no quota."
    )


class TenantPatch(CamelModel):
    """The body of PATCH /v1/tenants/{tenantId}: the fields sent change; an explicit
    null ordersPerMinute removes the quota."""

    # Absent: unchanged; null is refused (the default is not validated, a null is).
    name: TenantName = Field(default=None)  # type: ignore[assignment]  # absent only
    orders_per_minute: OrdersPerMinute | None = None


class RotationRequest(CamelModel):
    grace_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_GRACE_SECONDS)] = Field(
        default=DEFAULT_GRACE_SECONDS,
        description="How long the current client (its secret and tokens) keeps working.",
    )


class TenantClient(CamelModel):
    client_id: str
    created_at: Timestamp
    retires_at: Timestamp | None = None


class Tenant(CamelModel):
    tenant_id: str
    name: str
    status: TenantStatus = TenantStatus.ACTIVE
    scopes: list[TenantScope]
    orders_per_minute: int | None = None
    # The current client last; an earlier one only while its grace lasts.
    clients: list[TenantClient]
    created_at: Timestamp
    updated_at: Timestamp
    version: int = 1

    @classmethod
    def new(cls, request: TenantRequest, client_id: str, now: datetime) -> Self:
        return cls(
            tenant_id=client_id,
            name=request.name,
            scopes=sorted(set(request.scopes)),
            orders_per_minute=request.orders_per_minute,
            clients=[TenantClient(client_id=client_id, created_at=now)],
            created_at=now,
            updated_at=now,
        )

    def admits(self, client_id: str, now: datetime) -> bool:
        return any(
            c.client_id == client_id and (c.retires_at is None or now < c.retires_at)
            for c in self.clients
        )

    def changed(self, now: datetime, **fields: object) -> Self:
        """Validated whole, so no change can store a tenant a read would refuse."""
        values = self.model_dump() | fields | {"updated_at": now, "version": self.version + 1}
        return self.model_validate(values)

    def rotated(self, client_id: str, now: datetime, grace: timedelta) -> tuple[Self, list[str]]:
        """A new current client; the current one retires after `grace`, and any
        earlier one at once. Returns the tenant and the clients to delete now."""
        current = self.clients[-1]
        retiring = current.model_copy(update={"retires_at": now + grace})
        dropped = [c.client_id for c in self.clients[:-1]]
        kept = [retiring] if grace > timedelta(0) else []
        if not kept:
            dropped.append(current.client_id)
        new = TenantClient(client_id=client_id, created_at=now)
        return self.changed(now, clients=[*kept, new]), dropped

    def retired(self, now: datetime) -> tuple[Self, list[str]] | None:
        """The tenant without its clients whose grace ended, and those; None if none did."""
        gone = [c for c in self.clients if c.retires_at is not None and c.retires_at <= now]
        if not gone:
            return None
        left = [c for c in self.clients if c not in gone]
        return self.changed(now, clients=left), [c.client_id for c in gone]


class TenantNotFound(NotFound):
    code = "tenant_not_found"
    what = "tenant"


class TenantSuspended(DomainError):
    code = "tenant_suspended"

    def __init__(self) -> None:
        super().__init__("this tenant is suspended")


class ClientRetired(DomainError):
    """A rotated tenant's old client after its grace period."""

    code = "client_retired"

    def __init__(self) -> None:
        super().__init__("this client was replaced by a secret rotation and its grace ended")


class TenantChanged(DomainError):
    code = "tenant_changed"

    def __init__(self) -> None:
        super().__init__("the tenant changed concurrently; read it and retry")


class QuotaExceeded(DomainError):
    code = "quota_exceeded"

    def __init__(self, per_minute: int, retry_after_seconds: int) -> None:
        super().__init__(
            f"more than {per_minute} orders this minute",
            (FieldProblem("ordersPerMinute", f"the tenant's quota is {per_minute}"),),
        )
        self.retry_after_seconds = retry_after_seconds
