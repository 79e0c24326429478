"""The bodies the API answers with and the PATCH body it takes: the models the routes
return and openapi.json is generated from (scripts/openapi.py), so the document is what
the function sends. Each maps from the domain or service object it shows."""

from datetime import date
from http import HTTPStatus
from typing import Annotated, Any, Final, Self

from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    NonNegativeInt,
    RootModel,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from fundrouter.domain.lines import MAX_SHARDS, LineConfig, LineId, suggested_shards
from fundrouter.domain.orders import (
    CamelModel,
    HistoryEntry,
    Order,
    OrderFields,
    OrderStatus,
)
from fundrouter.domain.paging import Page
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.domain.tenants import Tenant
from fundrouter.service import auditing, tracking
from fundrouter.service.lines import LineView
from fundrouter.service.tenants import Credentials

MAX_PATCH_KEYS: Final = 32
# Stored as written (a line's createdAt), so served as a string, not re-formatted.
DateTimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Version = Annotated[int, Field(ge=1)]
Cursor = Annotated[
    str | None, Field(description="Pass as `cursor` for the next page; null on the last.")
]


class ResponseModel(CamelModel):
    # Every field is always sent (null when empty), so the document says so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Paged[T](ResponseModel):
    """Every listing's page: the service's Page, each item mapped by attribute."""

    items: list[T]
    next_cursor: Cursor

    @classmethod
    def of(cls, page: Page[Any]) -> Self:
        return cls.model_validate(page, from_attributes=True)


# ---------------------------------------------------------------- errors


class FieldError(ResponseModel):
    field: str
    reason: str


class ErrorDetail(ResponseModel):
    code: str = Field(description="Machine-readable: the table of codes in docs/api.md.")
    message: str
    fields: list[FieldError] = Field(description="Each field refused and why; may be empty.")


class Error(ResponseModel):
    """What the function answers every refusal and failure with."""

    error: ErrorDetail


class GatewayError(ResponseModel):
    """The gateway's own refusals (its JWT authorizer, its throttling): an HTTP API
    cannot reshape them."""

    model_config = ConfigDict(extra="allow")

    message: str


ERRORS: Final[dict[HTTPStatus, str]] = {
    HTTPStatus.BAD_REQUEST: "Malformed JSON",
    HTTPStatus.UNAUTHORIZED: "Missing or invalid bearer token (answered by the gateway)",
    HTTPStatus.FORBIDDEN: "The token lacks the route's scope",
    HTTPStatus.NOT_FOUND: "Unknown resource, or another tenant's",
    HTTPStatus.CONFLICT: "Conflict: same id with different content, an event the order's"
    " state does not allow, or one naming another line or version (`line_mismatch`,"
    " `version_mismatch`)",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The body is not JSON (`content-type: application/json`)",
    HTTPStatus.UNPROCESSABLE_ENTITY: "A field failed validation; `fields` names each",
    HTTPStatus.TOO_MANY_REQUESTS: "Throttled",
    HTTPStatus.INTERNAL_SERVER_ERROR: "A bug: nothing the request can change; logged",
    HTTPStatus.SERVICE_UNAVAILABLE: "Still throttled or failing after the server's own"
    " retries; nothing was written. Send the same request again after `Retry-After` seconds",
}
# The gateway answers these itself, before the function, as {"message": ...}.
GATEWAY_STATUSES: Final = frozenset(
    {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN, HTTPStatus.TOO_MANY_REQUESTS}
)


def answers(
    model: type[BaseModel],
    *,
    created: str | None = None,
    accepted: str | None = None,
    ok: str | None = None,
) -> dict[int, OpenAPIResponse]:
    """A route's `responses=`: the model it answers with and what each success status
    means, and the error shape of every error status, as openapi.json states them."""
    success = {HTTPStatus.CREATED: created, HTTPStatus.ACCEPTED: accepted, HTTPStatus.OK: ok}
    declared: dict[int, OpenAPIResponse] = {
        status: {"description": meaning, "content": _json(model)}
        for status, meaning in success.items()
        if meaning is not None
    }
    for status, description in ERRORS.items():
        body = Error | GatewayError if status in GATEWAY_STATUSES else Error
        declared[status] = {"description": description, "content": _json(body)}
    return declared


def _json(model: Any) -> dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel]:
    return {"application/json": {"model": model}}


# ---------------------------------------------------------------- orders


class OrderResource(OrderFields):
    """An order as the API serves it: the stored order less its bookkeeping."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    @classmethod
    def of(cls, order: Order) -> Self:
        return cls.model_validate(order, from_attributes=True)


class OrderPage(Paged[OrderResource]):
    pass


class HistoryPage(Paged[HistoryEntry]):
    """Entries oldest first; `historyTotal` on the order counts them all."""


# ---------------------------------------------------------------- lines


class _LineKey(ResponseModel):
    """A base after LineConfig, so that lineId comes first, as it always has."""

    line_id: LineId


class LineWarning(ResponseModel):
    code: str = Field(description="limit_below_held: new claims stop until enough is released")
    message: str


class LineResource(LineConfig, _LineKey):
    """A lending line's configuration and utilization."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    reserved: NonNegativeInt
    drawn: NonNegativeInt
    available: int = Field(description="Negative when the limit was lowered below what is held.")
    used_today: NonNegativeInt
    available_today: NonNegativeInt | None
    day: date = Field(description="The line's local day `usedToday` counts.")
    orders: dict[str, NonNegativeInt] = Field(
        description="The orders holding capacity on the line now, by status."
    )
    warnings: list[LineWarning]
    config_version: Version
    created_at: DateTimeText
    updated_at: DateTimeText
    claims_per_minute: NonNegativeInt | None = Field(
        None,
        description="Claims a minute on the line, as the reconciler last measured them"
        " (matched amount a minute over the mean reservation). Only GET"
        " /v1/lines/{lineId} reads it: null elsewhere and before a measure.",
    )
    suggested_shards: Annotated[int, Field(ge=1, le=MAX_SHARDS)] | None = Field(
        None,
        description="The `shards` (K) that keeps each capacity shard under 1,000 claims"
        " a second at `claimsPerMinute`; null when that is not measured.",
    )

    @classmethod
    def of(cls, view: LineView) -> Self:
        line, record = view.record.line, view.record
        held = line.counters.reserved + line.counters.drawn
        warnings = []
        if held > line.config.limit:
            warnings.append(
                LineWarning(
                    code="limit_below_held",
                    message=f"limit {line.config.limit} is below reserved + drawn {held}:"
                    " new claims stop until enough is released or repaid",
                )
            )
        daily_limit = line.config.daily_limit
        return cls(
            line_id=line.line_id,
            **line.config.model_dump(),
            reserved=line.counters.reserved,
            drawn=line.counters.drawn,
            available=line.available,
            used_today=view.used_today,
            available_today=None
            if daily_limit is None
            else max(0, min(line.available, daily_limit - view.used_today)),
            day=date.fromisoformat(view.day),
            orders=dict(record.orders),
            warnings=warnings,
            config_version=record.config_version,
            created_at=record.created_at,
            updated_at=record.updated_at,
            claims_per_minute=record.claims_per_minute,
            suggested_shards=None
            if record.claims_per_minute is None
            else suggested_shards(record.claims_per_minute),
        )


class LineList(ResponseModel):
    items: list[LineResource]


class LinePatch(RootModel[Annotated[dict[str, Any], Field(max_length=MAX_PATCH_KEYS)]]):
    """The body of PATCH /v1/lines/{lineId}: some of a line's configuration fields. The
    service merges them into the stored configuration and validates the result as a
    whole, so every problem is named at once, those of the merge (minAmount above the
    stored maxAmount) with those of the fields (an unknown one): the schema is
    LineConfig's with nothing required."""

    model_config = ConfigDict(defer_build=True)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        config = handler.resolve_ref_schema(handler(LineConfig.__pydantic_core_schema__))
        fields = {k: v for k, v in config.items() if k not in {"required", "title", "description"}}
        return fields | {
            "title": cls.__name__,
            "description": cls.__doc__,
            "maxProperties": MAX_PATCH_KEYS,
        }


# ---------------------------------------------------------------- routing


class _TenantKey(ResponseModel):
    """A base after RoutingPolicy, so that tenantId comes first (see _LineKey)."""

    tenant_id: str


class RoutingResource(RoutingPolicy, _TenantKey):
    """A tenant's routing policy. No lineIds: every line."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    @classmethod
    def of(cls, tenant_id: str, policy: RoutingPolicy) -> Self:
        return cls(tenant_id=tenant_id, **policy.model_dump())


# ---------------------------------------------------------------- admin


class OrderKey(ResponseModel):
    tenant_id: str
    order_id: str


class RepublishedOrder(OrderKey):
    status: OrderStatus
    version: Version


class FailedOrder(OrderKey):
    reason: str = Field(description="The error's name: the letter stays queued.")


class RepublishReport(ResponseModel):
    republished: list[RepublishedOrder]
    missing: list[OrderKey] = Field(description="Orders the table does not hold.")
    failed: list[FailedOrder]
    letters: NonNegativeInt
    more: bool = Field(description="The limit was reached: call again.")

    @classmethod
    def of(cls, report: tracking.RepublishOutcome, limit: int) -> Self:
        return cls(
            republished=[
                RepublishedOrder(
                    tenant_id=e.tenant_id,
                    order_id=e.order_id,
                    status=e.to_status,
                    version=e.version,
                )
                for e in report.republished
            ],
            missing=[OrderKey(tenant_id=m.tenant_id, order_id=m.order_id) for m in report.missing],
            failed=[
                FailedOrder(tenant_id=f.tenant_id, order_id=f.order_id, reason=reason)
                for f, reason in report.failed
            ],
            letters=report.letters,
            # The run stopped at the limit: more letters may be waiting.
            more=report.letters >= limit,
        )


class LineDrift(ResponseModel):
    reserved: NonNegativeInt
    expected_reserved: NonNegativeInt
    drawn: NonNegativeInt
    expected_drawn: NonNegativeInt
    orders: Annotated[list[str], Field(max_length=auditing.MAX_DRIFT_ORDERS)] = Field(
        description="The orders holding the line as audited (the first of them)."
    )
    amount: NonNegativeInt = Field(description="How far the counters are off, in all.")

    @classmethod
    def of(cls, drift: auditing.Drift | None) -> Self | None:
        if drift is None:
            return None
        return cls(**drift.values(), amount=drift.amount)


class PassUnderWay(ResponseModel):
    started_at: str | None
    orders: NonNegativeInt


class LineAudit(ResponseModel):
    line_id: str
    last_full_pass_at: str | None = Field(description="null: no pass has completed yet.")
    orders: NonNegativeInt
    drift: LineDrift | None
    unconfirmed: LineDrift | None = Field(
        description="A pass over several runs found this; drift once the next pass finds it too."
    )
    pass_under_way: PassUnderWay | None

    @classmethod
    def of(cls, state: auditing.AuditState) -> Self:
        under_way = None
        if state.cursor is not None:
            under_way = PassUnderWay(started_at=state.pass_started_at, orders=state.order_count)
        return cls(
            line_id=state.line_id,
            last_full_pass_at=state.last_full_pass_at,
            orders=state.last_pass_orders,
            drift=LineDrift.of(state.drift),
            unconfirmed=LineDrift.of(state.unconfirmed),
            pass_under_way=under_way,
        )


class AuditReport(ResponseModel):
    items: list[LineAudit]


# ---------------------------------------------------------------- tenants (decision 30)


class TenantResource(Tenant, ResponseModel):
    """A tenant as the API serves it: its record. `clients` lists its current client
    last, and before it the one a rotation replaced while its grace lasts."""

    @classmethod
    def of(cls, tenant: Tenant) -> Self:
        return cls.model_validate(tenant, from_attributes=True)


class TenantPage(Paged[TenantResource]):
    pass


class TenantCredentials(ResponseModel):
    """A new client's credentials: the secret is shown here once, never again."""

    tenant: TenantResource
    client_id: str
    client_secret: str

    @classmethod
    def of(cls, credentials: Credentials) -> Self:
        return cls(
            tenant=TenantResource.of(credentials.tenant),
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
        )
