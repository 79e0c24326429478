"""Orders: what a business system submits, and the order resource it reads back."""

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from fundrouter.domain.clock import Timestamp
from fundrouter.domain.currency import ISO_4217_CODES, is_iso_4217

# 10^12 minor units (ten billion yuan in fen): far above any single consumer or SME
# financing order, low enough that sums over many orders stay exact everywhere.
MAX_AMOUNT: Final = 10**12
MAX_TERM_MONTHS: Final = 480
MAX_METADATA_KEYS: Final = 20
# The order item keeps its newest history entries only; older ones are their own
# items (persistence/history.py), so the item's size does not grow with the loan's age.
RECENT_HISTORY: Final = 20
# At most this many entries leave the order item in one write: an order stored before
# the history was bounded sheds its backlog over its next writes, each transaction
# staying well inside DynamoDB's 100 actions.
MAX_SPILL: Final = 50

# What an id (order, line, funder, event) may be made of; tenant ids may be longer.
ID_CHARACTERS: Final = "A-Za-z0-9._:-"
Identifier = Annotated[str, StringConstraints(pattern=rf"^[{ID_CHARACTERS}]{{1,64}}$")]
TENANT_ID_PATTERN: Final = rf"^[{ID_CHARACTERS}]{{1,128}}$"
OrderId = Identifier
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=False)]
MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=256)]


def _known_currency(code: str) -> str:
    if not is_iso_4217(code):
        raise ValueError("not an ISO 4217 currency code")
    return code


Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_known_currency),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217_CODES)}),
]


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    MATCHED = "MATCHED"
    APPROVED = "APPROVED"
    DISBURSED = "DISBURSED"
    REPAID = "REPAID"
    UNMATCHED = "UNMATCHED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


# The statuses in which an order holds capacity on its line: reserved, or drawn.
RESERVING_STATUSES: Final = frozenset({OrderStatus.MATCHED, OrderStatus.APPROVED})
HOLDING_STATUSES: Final = (OrderStatus.MATCHED, OrderStatus.APPROVED, OrderStatus.DISBURSED)


class CamelModel(BaseModel):
    # defer_build: a model's validator is built on its first use, so a function pays
    # only for the models it uses, and not at import.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )


class Customer(CamelModel):
    id: ShortText
    region: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,16}$")] | None = None
    credit_grade: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+-]{1,8}$")] | None = None


class OrderRequest(CamelModel):
    """The body of POST /v1/orders: everything the tenant says about its order."""

    order_id: OrderId
    amount: Amount
    currency: Currency
    term_months: Annotated[StrictInt, Field(ge=1, le=MAX_TERM_MONTHS)]
    product: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    customer: Customer
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS)] = (
        Field(default_factory=dict)
    )

    def content_hash(self) -> str:
        """A digest of the content, so a retry with the same content is told apart
        from a different order reusing the id, without storing a second copy."""
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class HistoryEntry(CamelModel):
    status: OrderStatus
    at: Timestamp
    line_id: str | None = None
    # The order event that caused the entry, when one did (DECLINED, REPAID ...).
    event: str | None = None
    amount: int | None = None


class Candidate(CamelModel):
    """One line's part in a decision. `outcome` is CLAIMED, REFUSED (its claim lost
    to a concurrent one or a changed configuration), ELIGIBLE (ranked below the line
    that was claimed) or INELIGIBLE; `code` says which rule, `reason` in words."""

    line_id: str
    outcome: str
    code: str | None = None
    reason: str | None = None


class Decision(CamelModel):
    """The claimed line and the best-ranked others, as routing.decision() bounds it;
    `more` counts the lines not listed, by code, so the stored order stays small
    however many lines exist."""

    strategy: str
    candidates: list[Candidate]
    more: dict[str, int] = Field(default_factory=dict)
    # Why no line is listed at all: NO_LINES (none exists) or NO_LINE_IN_POLICY (none
    # is in the tenant's routing policy). Absent when any line is listed.
    reason: Literal["NO_LINES", "NO_LINE_IN_POLICY"] | None = None


class OrderFields(CamelModel):
    """What an order shows: its request, where it stands, and its recent history
    (fundrouter.http.models.OrderResource serves exactly these)."""

    order_id: OrderId
    tenant_id: str
    amount: Amount
    currency: Currency
    term_months: Annotated[int, Field(ge=1, le=MAX_TERM_MONTHS)]
    product: str
    customer: Customer
    metadata: dict[str, str]
    status: OrderStatus
    line_id: str | None = None
    funder_id: str | None = None
    reserved: NonNegativeInt = 0
    outstanding: NonNegativeInt = 0
    hold_expires_at: Timestamp | None = None
    decision: Decision | None = None
    # Lines that declined this order: never offered it again.
    declined_line_ids: list[str] = Field(default_factory=list)
    # Disbursed late (after its hold was given back) onto a line with no room left:
    # the line holds more than its limit because of this order.
    over_limit: bool = False
    # Entry i here is number history_total - len(history) + i.
    history: list[HistoryEntry] = Field(description="The newest entries, oldest first.")
    history_total: Annotated[int, Field(ge=1)] = Field(
        description="Every entry the order ever had."
    )
    created_at: Timestamp
    updated_at: Timestamp
    version: Annotated[int, Field(ge=1)]


class Order(OrderFields):
    """An order as stored: what it shows and the bookkeeping that moves it."""

    # The line's local day the reservation counts against, to give it back there.
    claim_day: str | None = None
    # The capacity shard of a sharded line the reservation is on (None: the line item).
    shard: int | None = None
    # The status before the current one, which the bounded history (RECENT_HISTORY
    # entries) may no longer show (a loan's many partial repayments): the `from` of a
    # re-published status event.
    previous_status: OrderStatus | None = None
    content_hash: str

    @classmethod
    def received(cls, tenant_id: str, request: OrderRequest, now: Timestamp) -> Self:
        # Every field of the request as sent: one it gains cannot be left out here.
        return cls(
            **dict(request),
            tenant_id=tenant_id,
            status=OrderStatus.RECEIVED,
            history=[HistoryEntry(status=OrderStatus.RECEIVED, at=now)],
            history_total=1,
            content_hash=request.content_hash(),
            created_at=now,
            updated_at=now,
            version=1,
        )

    @model_validator(mode="before")
    @classmethod
    def _unbounded_history(cls, values: Any) -> Any:
        """An order stored before the history was bounded holds all of it, uncounted,
        and its previous status only there."""
        if not isinstance(values, dict) or {"historyTotal", "history_total"} & set(values):
            return values
        history = values.get("history") or []
        statuses = [e.status if isinstance(e, HistoryEntry) else e["status"] for e in history]
        earlier = [status for status in statuses if status != values.get("status")]
        return values | {
            "historyTotal": len(history),
            "previousStatus": earlier[-1] if earlier else None,
        }

    def first_recent(self) -> int:
        """The number of the oldest entry still in `history` (entries count from 0)."""
        return self.history_total - len(self.history)

    def with_entry(self, entry: HistoryEntry) -> dict[str, Any]:
        """The history fields once `entry` (of the status the order moves to) is
        added: the newest RECENT_HISTORY kept (MAX_SPILL at most leave per write; see
        spilled_history)."""
        history = [*self.history, entry]
        keep = max(RECENT_HISTORY, len(history) - MAX_SPILL)
        changed = entry.status != self.status
        return {
            "history": history[-keep:],
            "history_total": self.history_total + 1,
            "previous_status": self.status if changed else self.previous_status,
        }


def spilled_history(before: Order, after: Order) -> list[tuple[int, HistoryEntry]]:
    """The entries `before` kept that `after` no longer does, with their numbers: what
    the write from one to the other must store as items of their own."""
    first = before.first_recent()
    return [
        (first + i, entry)
        for i, entry in enumerate(before.history)
        if first + i < after.first_recent()
    ]


@dataclass(frozen=True)
class Holding:
    """What one order holds on its line: the audit's unit."""

    tenant_id: str
    order_id: str
    status: OrderStatus
    reserved: int
    outstanding: int


@dataclass(frozen=True)
class UnreadableOrder:
    """A stored order item that no longer decodes as an Order: its key (tenant/order
    when the item names them) and the error's type, for the reconciler to report."""

    key: str
    error: str
