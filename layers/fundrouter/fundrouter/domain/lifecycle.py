"""What happens to an order downstream of the match, as pure transitions.

Each event type is allowed from some statuses only (docs/api.md), and says what it does to
the order and to its line's capacity. The persistence layer applies both in one
transaction; this module decides them.
"""

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from fundrouter.domain.errors import DomainError, FieldProblem
from fundrouter.domain.lines import LineId
from fundrouter.domain.orders import (
    RESERVING_STATUSES,
    Amount,
    CamelModel,
    Decision,
    HistoryEntry,
    Identifier,
    Order,
    OrderStatus,
)

EventId = Identifier


class EventType(StrEnum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    DISBURSED = "DISBURSED"
    REPAID = "REPAID"


ALLOWED_FROM: Final[dict[EventType, frozenset[OrderStatus]]] = {
    EventType.APPROVED: frozenset({OrderStatus.MATCHED}),
    EventType.DECLINED: frozenset({OrderStatus.MATCHED, OrderStatus.APPROVED}),
    EventType.CANCELLED: frozenset(
        {OrderStatus.RECEIVED, OrderStatus.MATCHED, OrderStatus.APPROVED}
    ),
    EventType.DISBURSED: frozenset({OrderStatus.MATCHED, OrderStatus.APPROVED}),
    EventType.REPAID: frozenset({OrderStatus.DISBURSED}),
}
_WITH_AMOUNT: Final = frozenset({EventType.DISBURSED, EventType.REPAID})
_WITH_AMOUNT_NAMES: Final[list[JsonValue]] = [t.value for t in sorted(_WITH_AMOUNT)]
# A funder may report money it lent just before the hold was given back: DISBURSED is
# still taken from these statuses for a while after (api.md's "late disbursement").
LATE_DISBURSED_FROM: Final = frozenset({OrderStatus.EXPIRED, OrderStatus.CANCELLED})
LATE_DISBURSE_GRACE: Final = timedelta(hours=1)


class OrderEvent(CamelModel):
    """The body of POST /v1/orders/{orderId}/events."""

    # The amount rule of the validator below, stated for clients (openapi.json).
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"enum": _WITH_AMOUNT_NAMES}}},
            "then": {"required": ["amount"], "properties": {"amount": {"type": "integer"}}},
            "else": {"properties": {"amount": {"type": "null"}}},
        }
    )

    event_id: EventId
    type: EventType
    amount: Amount | None = Field(default=None, validate_default=True)
    reason: Annotated[str, StringConstraints(max_length=256)] | None = None
    # Optional guards: the event is for this line (a funder's late answer must not
    # move the order it has since been re-routed from) and this version of the order.
    line_id: LineId | None = None
    expected_version: Annotated[StrictInt, Field(ge=1)] | None = None

    @field_validator("amount")
    @classmethod
    def _amount_only_where_it_means_something(
        cls, amount: int | None, info: ValidationInfo
    ) -> int | None:
        kind = info.data.get("type")
        if kind in _WITH_AMOUNT and amount is None:
            raise ValueError(f"required for {kind}")
        if kind is not None and kind not in _WITH_AMOUNT and amount is not None:
            raise ValueError(f"only DISBURSED and REPAID carry an amount, not {kind}")
        return amount

    def content_hash(self) -> str:
        # Guards absent are left out, so events stored before they existed hash alike.
        absent = {"line_id", "expected_version"} & {name for name, value in self if value is None}
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude=absent),
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class TransitionNotAllowed(DomainError):
    code = "transition_not_allowed"

    def __init__(self, event: EventType, status: OrderStatus) -> None:
        super().__init__(
            f"{event} is not allowed for an order that is {status}",
            (FieldProblem("type", f"order status is {status}"),),
        )
        self.status = status


class LineMismatch(DomainError):
    code = "line_mismatch"

    def __init__(self, line_id: str, current: str | None) -> None:
        super().__init__(
            f"the event is for line {line_id}, the order is on {current or 'no line'}",
            (FieldProblem("lineId", f"order's line is {current or 'none'}"),),
        )


class VersionMismatch(DomainError):
    code = "version_mismatch"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"the event expects version {expected}, the order is at version {current}",
            (FieldProblem("expectedVersion", f"order's version is {current}"),),
        )


class AmountExceedsHeld(DomainError):
    code = "amount_exceeds_held"

    def __init__(self, event: EventType, amount: int, held: int, what: str) -> None:
        super().__init__(
            f"{event} amount {amount} is above the {what} {held}",
            (FieldProblem("amount", f"above the {what} {held}"),),
        )


class CapacityMove(StrEnum):
    RELEASE = "RELEASE"
    DRAW = "DRAW"
    RESTORE = "RESTORE"
    # A late disbursement: drawn again on the line it was released from, if it has room;
    LATE_DRAW = "LATE_DRAW"
    # and if it has none, drawn all the same (the money is out), the order flagged.
    OVER_LIMIT_DRAW = "OVER_LIMIT_DRAW"


@dataclass(frozen=True)
class CapacityEffect:
    """What the event does to the order's line: release a reservation (and the
    day's usage it counted), draw it (partly), or restore repaid principal."""

    move: CapacityMove
    line_id: str
    amount: int
    drawn: int = 0
    claim_day: str | None = None
    shard: int | None = None  # the order's shard of a sharded line (None: the line item)


@dataclass(frozen=True)
class Transition:
    order: Order
    effect: CapacityEffect | None


def apply_event(
    order: Order, event: OrderEvent, now: datetime, late_grace: timedelta = LATE_DISBURSE_GRACE
) -> Transition:
    """The order after `event`, and the capacity effect that must commit with it.
    Raises TransitionNotAllowed, LineMismatch, VersionMismatch or AmountExceedsHeld
    and changes nothing."""
    if event.type is EventType.DISBURSED and order.status in LATE_DISBURSED_FROM:
        _check_target(order, event)
        return _disbursed_late(order, event, now, late_grace)
    if order.status not in ALLOWED_FROM[event.type]:
        raise TransitionNotAllowed(event.type, order.status)
    _check_target(order, event)
    match event.type:
        case EventType.APPROVED:
            return _moved(order, event, now, OrderStatus.APPROVED, fields={}, effect=None)
        case EventType.DECLINED:
            fields = _unreserved([*order.declined_line_ids, order.line_id or ""])
            status, effect = OrderStatus.RECEIVED, _release(order)
            return _moved(order, event, now, status, fields=fields, effect=effect)
        case EventType.CANCELLED:
            status, effect = OrderStatus.CANCELLED, _release(order)
            return _moved(order, event, now, status, fields=_unreserved(), effect=effect)
        case EventType.DISBURSED:
            return _disbursed(order, event, now)
        case EventType.REPAID:
            return _repaid(order, event, now)


def _disbursed(order: Order, event: OrderEvent, now: datetime) -> Transition:
    amount = _amount(event)
    if amount > order.reserved:
        raise AmountExceedsHeld(event.type, amount, order.reserved, "reservation")
    effect = CapacityEffect(
        CapacityMove.DRAW,
        _line(order),
        order.reserved,
        drawn=amount,
        claim_day=order.claim_day,
        shard=order.shard,
    )
    fields = _unreserved() | {"outstanding": amount}
    return _moved(order, event, now, OrderStatus.DISBURSED, fields=fields, effect=effect)


def _repaid(order: Order, event: OrderEvent, now: datetime) -> Transition:
    amount = _amount(event)
    if amount > order.outstanding:
        raise AmountExceedsHeld(event.type, amount, order.outstanding, "outstanding")
    left = order.outstanding - amount
    status = OrderStatus.REPAID if left == 0 else OrderStatus.DISBURSED
    effect = CapacityEffect(CapacityMove.RESTORE, _line(order), amount, shard=order.shard)
    return _moved(order, event, now, status, fields={"outstanding": left}, effect=effect)


def _check_target(order: Order, event: OrderEvent) -> None:
    if event.line_id is not None and event.line_id != order.line_id:
        raise LineMismatch(event.line_id, order.line_id)
    if event.expected_version is not None and event.expected_version != order.version:
        raise VersionMismatch(event.expected_version, order.version)


def _disbursed_late(
    order: Order, event: OrderEvent, now: datetime, late_grace: timedelta
) -> Transition:
    """DISBURSED after the hold expired or was cancelled, within `late_grace` of it:
    the amount is drawn on the line the order held (LATE_DRAW; see over_limit)."""
    if order.line_id is None or now - order.updated_at > late_grace:
        raise TransitionNotAllowed(event.type, order.status)
    amount = _amount(event)
    if amount > order.amount:
        raise AmountExceedsHeld(event.type, amount, order.amount, "order amount")
    effect = CapacityEffect(
        CapacityMove.LATE_DRAW,
        order.line_id,
        amount,
        drawn=amount,
        claim_day=order.claim_day,
        shard=order.shard,
    )
    fields: dict[str, object] = {"outstanding": amount}
    return _moved(order, event, now, OrderStatus.DISBURSED, fields=fields, effect=effect)


def over_limit(transition: Transition) -> Transition:
    """A late disbursement the line has no room for: still drawn, exactly, and the
    order flagged so the line's excess is explained (and alarmed on)."""
    if transition.effect is None or transition.effect.move is not CapacityMove.LATE_DRAW:
        raise ValueError("only a late disbursement can be over the limit")
    order = Order.model_validate(transition.order.model_dump() | {"over_limit": True})
    return Transition(order, replace(transition.effect, move=CapacityMove.OVER_LIMIT_DRAW))


def _moved(
    order: Order,
    event: OrderEvent,
    now: datetime,
    status: OrderStatus,
    *,
    fields: dict[str, object],
    effect: CapacityEffect | None,
) -> Transition:
    entry = HistoryEntry(
        status=status, at=now, line_id=order.line_id, event=event.type.value, amount=event.amount
    )
    updated = order.model_copy(
        update=fields
        | order.with_entry(entry)
        | {"status": status, "updated_at": now, "version": order.version + 1}
    )
    return Transition(Order.model_validate(updated.model_dump()), effect)


def _unreserved(declined: list[str] | None = None) -> dict[str, object]:
    # The claim day stays: a late disbursement counts on it again.
    fields: dict[str, object] = {"reserved": 0, "hold_expires_at": None}
    if declined is not None:
        # Back to waiting for a match, on any line but those that declined it.
        fields |= {
            "line_id": None,
            "funder_id": None,
            "claim_day": None,
            "shard": None,
            "declined_line_ids": declined,
        }
    return fields


def _release(order: Order) -> CapacityEffect | None:
    if order.reserved == 0 or order.line_id is None:
        return None
    return CapacityEffect(
        CapacityMove.RELEASE,
        order.line_id,
        order.reserved,
        claim_day=order.claim_day,
        shard=order.shard,
    )


def _line(order: Order) -> str:
    if order.line_id is None:  # pragma: no cover - MATCHED and later always hold a line
        raise ValueError(f"order {order.order_id} holds no line")
    return order.line_id


def _amount(event: OrderEvent) -> int:
    if event.amount is None:  # pragma: no cover - the model requires it for these types
        raise ValueError("amount missing")
    return event.amount


def matched(
    order: Order,
    *,
    line_id: str,
    funder_id: str,
    now: datetime,
    hold_expires_at: datetime,
    claim_day: str,
    decision: Decision,
    shard: int | None = None,
) -> Order:
    """The order once its line's capacity is claimed for it (on `shard` of a sharded
    line)."""
    return _next(
        order,
        now,
        HistoryEntry(status=OrderStatus.MATCHED, at=now, line_id=line_id),
        status=OrderStatus.MATCHED,
        line_id=line_id,
        funder_id=funder_id,
        reserved=order.amount,
        hold_expires_at=hold_expires_at,
        claim_day=claim_day,
        decision=decision,
        shard=shard,
    )


def unmatched(order: Order, now: datetime, decision: Decision) -> Order:
    """The order when no line can take it; the decision says why for each line."""
    return _next(
        order,
        now,
        HistoryEntry(status=OrderStatus.UNMATCHED, at=now),
        status=OrderStatus.UNMATCHED,
        decision=decision,
    )


def expire(order: Order, now: datetime) -> Transition:
    """A hold not disbursed in time: EXPIRED, and the reservation given back."""
    if order.status not in RESERVING_STATUSES:
        raise TransitionNotAllowed(EventType.CANCELLED, order.status)
    after = _next(
        order,
        now,
        HistoryEntry(status=OrderStatus.EXPIRED, at=now, line_id=order.line_id),
        status=OrderStatus.EXPIRED,
        **_unreserved(),
    )
    return Transition(after, _release(order))


def _next(order: Order, now: datetime, entry: HistoryEntry, **fields: object) -> Order:
    updated = order.model_copy(
        update=fields | order.with_entry(entry) | {"updated_at": now, "version": order.version + 1}
    )
    return Order.model_validate(updated.model_dump())
