"""What the design allows: lines, orders and their ledgers as the model follows
them, the arrows of the state diagram, and the model's own ranking and refusals."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

from fundrouter.domain.orders import HistoryEntry

START: Final = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
TENANTS: Final = ("tenant-a", "tenant-b", "tenant-c")
HOLDING: Final = frozenset({"MATCHED", "APPROVED", "DISBURSED"})
RESERVING: Final = frozenset({"MATCHED", "APPROVED"})
LIVE: Final = frozenset({"RECEIVED", "MATCHED", "APPROVED", "DISBURSED"})
# docs/design.md's arrows, plus MATCHED/APPROVED -> UNMATCHED (a decline with no line
# left), which this implementation takes in two writes, through RECEIVED.
ARROWS: Final[dict[str, frozenset[str]]] = {
    "RECEIVED": frozenset({"MATCHED", "UNMATCHED", "CANCELLED"}),
    "MATCHED": frozenset(
        {"APPROVED", "RECEIVED", "UNMATCHED", "CANCELLED", "EXPIRED", "DISBURSED"}
    ),
    "APPROVED": frozenset({"RECEIVED", "UNMATCHED", "CANCELLED", "EXPIRED", "DISBURSED"}),
    "DISBURSED": frozenset({"DISBURSED", "REPAID"}),
    "UNMATCHED": frozenset(),
    # A late disbursement: money lent just before the hold was given back.
    "CANCELLED": frozenset({"DISBURSED"}),
    "EXPIRED": frozenset({"DISBURSED"}),
    "REPAID": frozenset(),
}
# docs/api.md's order events table: allowed from, and the status each leads to.
ALLOWED_FROM: Final[dict[str, frozenset[str]]] = {
    "APPROVED": frozenset({"MATCHED"}),
    "DECLINED": frozenset({"MATCHED", "APPROVED"}),
    "CANCELLED": frozenset({"RECEIVED", "MATCHED", "APPROVED"}),
    "DISBURSED": frozenset({"MATCHED", "APPROVED"}),
    "REPAID": frozenset({"DISBURSED"}),
}
# DISBURSED is also taken this long after EXPIRED or CANCELLED, for an order that held
# a line. Half a second off the service's default, so no step lands on the boundary.
LATE_FROM: Final = frozenset({"EXPIRED", "CANCELLED"})
LATE_GRACE: Final = timedelta(seconds=3599, milliseconds=500)
LEADS_TO: Final[dict[str, frozenset[str]]] = {
    "APPROVED": frozenset({"APPROVED"}),
    "DECLINED": frozenset({"RECEIVED"}),
    "CANCELLED": frozenset({"CANCELLED"}),
    "DISBURSED": frozenset({"DISBURSED"}),
    "REPAID": frozenset({"DISBURSED", "REPAID"}),
}


class SimulationFailure(AssertionError):
    pass


def expect(condition: object, message: str | Callable[[], str]) -> None:
    if not condition:
        raise SimulationFailure(message() if callable(message) else message)


# ---------------------------------------------------------------- the model


@dataclass
class ModelLine:
    line_id: str
    config: dict[str, Any]
    reserved: int = 0
    drawn: int = 0
    matched_total: int = 0
    daily: dict[str, int] = field(default_factory=dict)
    # An operator lowered the limit below what was held; cleared once it fits again.
    over_limit_by_operator: bool = False
    # A late disbursement was drawn beyond the limit; cleared once it fits again.
    over_limit_by_late_draw: bool = False

    @property
    def held(self) -> int:
        return self.reserved + self.drawn

    @property
    def available(self) -> int:
        return int(self.config["limit"]) - self.held

    def day(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.config["timezone"])).date().isoformat()

    def window_refusal(self, moment: datetime) -> str | None:
        """Why the line takes no claim at `moment`: outside [activeFrom, activeUntil)."""
        opens, closes = self.config.get("activeFrom"), self.config.get("activeUntil")
        if opens is not None and moment < datetime.fromisoformat(opens):
            return f"opens {opens}"
        if closes is not None and moment >= datetime.fromisoformat(closes):
            return f"closed {closes}"
        return None

    def daily_refusal(self, day: str, amount: int) -> str | None:
        cap = self.config.get("dailyLimit")
        if cap is not None and self.daily.get(day, 0) + amount > cap:
            return f"daily cap {cap} on {day}: used {self.daily.get(day, 0)} + {amount}"
        return None


@dataclass
class Ledger:
    """Where everything ever reserved for an order went."""

    claimed: int = 0
    released: int = 0
    disbursed: int = 0
    repaid: int = 0


@dataclass
class ModelOrder:
    tenant: str
    order_id: str
    request: dict[str, Any]
    updated_at: datetime
    status: str = "RECEIVED"
    version: int = 1
    line_id: str | None = None
    reserved: int = 0
    outstanding: int = 0
    claim_day: str | None = None
    hold_expires_at: datetime | None = None
    declined: list[str] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    # Every history entry, as the stream showed them: the order item keeps the newest.
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.order_id)

    @property
    def amount(self) -> int:
        return int(self.request["amount"])


@dataclass
class Changes:
    """What one step wrote to the Orders table, as the stream showed it."""

    inserted: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[tuple[str, str], str, str, HistoryEntry]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    spilled: list[tuple[tuple[str, str], str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.inserted or self.moved or self.events or self.spilled)


def static_refusal(
    line: ModelLine, order: ModelOrder, policy: dict[str, Any] | None, declined: list[str]
) -> str | None:
    """Why `line` may not take `order` whatever its counters (docs/design.md, docs/api.md)."""
    config, request = line.config, order.request
    customer = request["customer"]
    checks = (
        (policy is None or not policy["lineIds"] or line.line_id in policy["lineIds"], "policy"),
        (line.line_id not in declined, "declined it before"),
        (config["status"] == "ACTIVE", "paused"),
        (request["currency"] == config["currency"], "currency"),
        (config["minAmount"] <= request["amount"] <= config["maxAmount"], "amount range"),
        (not config["terms"] or request["termMonths"] in config["terms"], "term"),
        (not config["products"] or request["product"] in config["products"], "product"),
        (not config["regions"] or customer.get("region") in config["regions"], "region"),
        (
            not config["creditGrades"] or customer.get("creditGrade") in config["creditGrades"],
            "credit grade",
        ),
    )
    return next((reason for ok, reason in checks if not ok), None)


def ranked(lines: list[ModelLine], strategy: str) -> list[ModelLine]:
    """docs/api.md's strategies; ties go to the lower priority number, then the lineId."""

    def weighted(line: ModelLine) -> tuple[Any, ...]:
        total_weight = sum(other.config["weight"] for other in lines)
        total_volume = sum(other.matched_total for other in lines)
        deficit = Fraction(0)
        if line.config["weight"]:
            deficit = Fraction(line.config["weight"], total_weight)
            if total_volume:
                deficit -= Fraction(line.matched_total, total_volume)
        return (line.config["weight"] == 0, -deficit)

    keys: dict[str, Callable[[ModelLine], tuple[Any, ...]]] = {
        "PRIORITY": lambda _: (),
        "LOWEST_COST": lambda line: (line.config["aprBps"],),
        "BEST_FIT": lambda line: (line.available,),
        "WEIGHTED": weighted,
    }
    key = keys[strategy]
    return sorted(lines, key=lambda line: (*key(line), line.config["priority"], line.line_id))


def history_ledger(history: list[HistoryEntry], amount: int) -> tuple[Ledger, int, int]:
    """What the order's whole history says it reserved, released, disbursed and repaid,
    and so what it must hold now: (ledger, reserved, outstanding)."""
    ledger, reserved, outstanding = Ledger(), 0, 0
    for entry in history[1:]:
        if entry.status.value == "MATCHED":
            ledger.claimed += amount
            reserved = amount
        elif entry.event == "DISBURSED":
            drawn = entry.amount or 0
            ledger.disbursed += drawn
            if reserved:
                ledger.released += reserved - drawn
            else:  # late: claimed again, as drawn
                ledger.claimed += drawn
            reserved, outstanding = 0, drawn
        elif entry.event == "REPAID":
            ledger.repaid += entry.amount or 0
            outstanding -= entry.amount or 0
        elif entry.status.value in {"RECEIVED", "CANCELLED", "EXPIRED"}:
            ledger.released += reserved
            reserved = 0
    return ledger, reserved, outstanding
