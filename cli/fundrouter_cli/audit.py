"""The invariant of docs/design.md, checked from what the API serves. Pure.

At a quiescent point, for each line: ``reserved`` equals the sum of the reservations
of its MATCHED and APPROVED orders, ``drawn`` equals the outstanding principal of its
DISBURSED orders, ``reserved + drawn <= limit`` unless an operator lowered the limit
below it or a late disbursement was drawn beyond it (its order says ``overLimit``),
and each order holds at most one line (and holds nothing once it is
finished).

The orders given must be every order that can hold the lines given: the audit cannot
tell a missing order from a counter that drifted.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

RESERVING: Final = frozenset({"MATCHED", "APPROVED"})
DRAWING: Final = frozenset({"DISBURSED"})
HOLDING_NOTHING: Final = frozenset({"RECEIVED", "UNMATCHED", "CANCELLED", "EXPIRED", "REPAID"})


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class AuditReport:
    lines_checked: int
    orders_checked: int
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _int(item: Mapping[str, Any], key: str) -> int:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _order_violations(order: Mapping[str, Any]) -> list[Violation]:
    """An order holds exactly one line while it reserves or owes, and nothing after."""
    name = f"order {order.get('orderId')}"
    status = str(order.get("status"))
    reserved, outstanding = _int(order, "reserved"), _int(order, "outstanding")
    if status in HOLDING_NOTHING:
        if reserved or outstanding:
            detail = f"{status} with reserved {reserved}, outstanding {outstanding}"
            return [Violation("holds capacity when done", name, detail)]
        return []
    if status not in RESERVING | DRAWING:
        return [Violation("unknown status", name, status)]
    found = []
    if not order.get("lineId"):
        found.append(Violation("holds no line", name, f"{status} but lineId is empty"))
    # (what must be positive, what must be zero) for the status
    positive, zero = (
        (("reserved", reserved), ("outstanding", outstanding))
        if status in RESERVING
        else (("outstanding", outstanding), ("reserved", reserved))
    )
    if positive[1] <= 0:
        found.append(Violation(positive[0], name, f"{status} with {positive[0]} {positive[1]}"))
    if zero[1]:
        found.append(Violation(zero[0], name, f"{status} with {zero[0]} {zero[1]}"))
    return found


@dataclass
class _Holdings:
    reserved: Counter[str] = field(default_factory=Counter)
    drawn: Counter[str] = field(default_factory=Counter)
    holders: Counter[str] = field(default_factory=Counter)
    over_limit: Counter[str] = field(default_factory=Counter)


def _line_violations(line: Mapping[str, Any], held: _Holdings) -> tuple[list[Violation], list[str]]:
    line_id = str(line.get("lineId"))
    name = f"line {line_id}"
    found = _counter_violations(
        line, name, held.reserved[line_id], held.drawn[line_id], held.holders[line_id]
    )
    over, notes = _above_limit(line, name, held.over_limit[line_id])
    return found + over, notes


def _counter_violations(
    line: Mapping[str, Any], name: str, expected_reserved: int, expected_drawn: int, holders: int
) -> list[Violation]:
    """The line's counters against what its orders hold, and against each other."""
    limit, reserved, drawn = _int(line, "limit"), _int(line, "reserved"), _int(line, "drawn")
    found = []
    if reserved != expected_reserved:
        found.append(
            Violation(
                "reserved != sum of MATCHED/APPROVED reservations",
                name,
                f"line reserved {reserved}, its {holders} holding orders {expected_reserved}"
                f" (difference {reserved - expected_reserved:+d})",
            )
        )
    if drawn != expected_drawn:
        found.append(
            Violation(
                "drawn != sum of DISBURSED outstanding",
                name,
                f"line drawn {drawn}, its DISBURSED orders {expected_drawn}"
                f" (difference {drawn - expected_drawn:+d})",
            )
        )
    available = line.get("available")
    if isinstance(available, int) and available != limit - reserved - drawn:
        found.append(
            Violation(
                "available != limit - reserved - drawn",
                name,
                f"available {available}, limit {limit} - reserved {reserved} - drawn {drawn}",
            )
        )
    return found


def _above_limit(
    line: Mapping[str, Any], name: str, over_limit: int
) -> tuple[list[Violation], list[str]]:
    """Reserved + drawn above the limit: a note where late disbursements (overLimit) or
    a lowered limit explain it, else over-allocation."""
    limit, reserved, drawn = _int(line, "limit"), _int(line, "reserved"), _int(line, "drawn")
    if reserved + drawn <= limit:
        return [], []
    above = f"{name}: reserved + drawn {reserved + drawn} above limit {limit}"
    if over_limit:
        return [], [
            f"{above}; {over_limit} of its orders were disbursed late beyond it (overLimit)"
        ]
    if _int(line, "configVersion") > 1:
        return [], [
            f"{above}; its configuration was changed since creation (an operator lowered the limit)"
        ]
    detail = f"reserved {reserved} + drawn {drawn} = {reserved + drawn} > limit {limit}"
    return [Violation("over-allocated", name, detail)], []


def _holdings(orders: Sequence[Mapping[str, Any]]) -> _Holdings:
    """What the orders say each line holds."""
    held = _Holdings()
    for order in orders:
        status, line_id = order.get("status"), order.get("lineId")
        if not isinstance(line_id, str) or not line_id:
            continue
        if status in RESERVING:
            held.reserved[line_id] += _int(order, "reserved")
            held.holders[line_id] += 1
        elif status in DRAWING:
            held.drawn[line_id] += _int(order, "outstanding")
            held.holders[line_id] += 1
            held.over_limit[line_id] += order.get("overLimit") is True
    return held


def _duplicates(orders: Sequence[Mapping[str, Any]]) -> list[Violation]:
    keys = Counter((str(o.get("tenantId")), str(o.get("orderId"))) for o in orders)
    return [
        Violation("listed more than once", f"order {order_id}", f"{seen} times ({tenant})")
        for (tenant, order_id), seen in sorted(keys.items())
        if seen > 1
    ]


def audit(lines: Sequence[Mapping[str, Any]], orders: Sequence[Mapping[str, Any]]) -> AuditReport:
    """Check `lines` against `orders` (every order that can hold them)."""
    violations = _duplicates(orders)
    notes: list[str] = []
    for order in orders:
        violations.extend(_order_violations(order))
    held = _holdings(orders)
    for line in lines:
        found, line_notes = _line_violations(line, held)
        violations.extend(found)
        notes.extend(line_notes)
    audited = {str(line.get("lineId")) for line in lines}
    elsewhere = sum(count for line_id, count in held.holders.items() if line_id not in audited)
    if elsewhere:
        notes.append(f"{elsewhere} orders hold lines outside the audit (not counted)")
    waiting = sum(1 for order in orders if order.get("status") == "RECEIVED")
    if waiting:
        notes.append(f"{waiting} orders still RECEIVED: not a quiescent point")
    return AuditReport(len(lines), len(orders), violations, notes)
