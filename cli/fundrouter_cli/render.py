"""How lines, orders and outcomes look in a terminal (rich renderables).

Money arrives as integer minor units with a currency and is shown in major units,
computed with Decimal, never through a float, except the compact table form
("12.5K") whose rounding is only for the eye.
"""

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

# ISO 4217 currencies whose minor unit is not 1/100.
_MINOR_DIGITS: Final[Mapping[str, int]] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}
STATUS_STYLES: Final[Mapping[str, str]] = {
    "RECEIVED": "blue",
    "MATCHED": "green",
    "APPROVED": "bright_green",
    "DISBURSED": "cyan",
    "REPAID": "magenta",
    "UNMATCHED": "red",
    "CANCELLED": "yellow",
    "EXPIRED": "dark_orange",
    "ACTIVE": "green",
    "PAUSED": "yellow",
}
STATUS_ORDER: Final = (
    "RECEIVED",
    "MATCHED",
    "APPROVED",
    "DISBURSED",
    "REPAID",
    "UNMATCHED",
    "CANCELLED",
    "EXPIRED",
)
BAR_WIDTH: Final = 16


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency, 2)


def money(amount: int | None, currency: str, *, compact: bool = False) -> str:
    """12500000 CNY -> "125,000.00" (exact) or "125K" (compact: three significant
    digits, K/M/B)."""
    if amount is None:
        return "-"
    digits = minor_digits(currency)
    value = Decimal(amount).scaleb(-digits)
    if not compact:
        return f"{value:,.{digits}f}"
    return _compact(value)


_UNITS: Final = ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K"))


def _compact(value: Decimal) -> str:
    for index, (threshold, suffix) in enumerate(_UNITS):
        if abs(value) >= threshold:
            shown = _significant(value / threshold)
            if shown.lstrip("-") == "1000" and index > 0:  # 999.96K -> 1M, not 1000K
                return ("-" if value < 0 else "") + "1" + _UNITS[index - 1][1]
            return shown + suffix
    return _significant(value) if value != value.to_integral_value() else f"{value:,.0f}"


def _significant(value: Decimal) -> str:
    size = abs(value)
    places = 0 if size >= 100 else 1 if size >= 10 else 2
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def styled_status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def bar_cells(limit: int, reserved: int, drawn: int, width: int = BAR_WIDTH) -> tuple[int, int]:
    """How many of `width` cells are drawn and reserved (the rest is free), rounding
    down so a nearly full line does not look full, but any use shows one cell."""
    if limit <= 0:
        return 0, 0
    used = min(width, (reserved + drawn) * width // limit)
    drawn_cells = min(used, drawn * width // limit)
    if reserved + drawn > 0 and used == 0:
        used = 1
        drawn_cells = 1 if drawn >= reserved else 0
    return drawn_cells, used - drawn_cells


def utilization(limit: int, reserved: int, drawn: int) -> float:
    return 0.0 if limit <= 0 else (reserved + drawn) / limit


def utilization_bar(limit: int, reserved: int, drawn: int, width: int = BAR_WIDTH) -> Text:
    drawn_cells, reserved_cells = bar_cells(limit, reserved, drawn, width)
    share = utilization(limit, reserved, drawn)
    over = reserved + drawn > limit
    bar = Text()
    bar.append("█" * drawn_cells, style="red" if over else "cyan")
    bar.append("▓" * reserved_cells, style="red" if over else "yellow")
    bar.append("░" * (width - drawn_cells - reserved_cells), style="grey50")
    bar.append(f" {share:6.1%}", style="bold red" if over else "")
    return bar


def _int(line: Mapping[str, Any], key: str) -> int:
    value = line.get(key)
    return value if isinstance(value, int) else 0


def lines_table(
    lines: Sequence[Mapping[str, Any]], *, exact: bool = False, title: str | None = None
) -> Table:
    """Every line: limit, reserved, drawn, available, today's usage and a bar
    (cyan drawn, yellow reserved, grey free), and totals by currency."""
    currencies = sorted({str(line.get("currency", "")) for line in lines})
    several = len(currencies) > 1
    table = _lines_frame(lines, title, currencies)
    compact = not exact
    totals: dict[str, list[int]] = {}
    for line in lines:
        currency = str(line.get("currency", ""))
        amounts = _amounts(line)
        limit, reserved, drawn, available = amounts
        *held, free = _money_cells(currency, amounts, compact)
        table.add_row(
            str(line.get("lineId", "?")),
            str(line.get("funderId", "")),
            styled_status(str(line.get("status", ""))),
            *([currency] if several else []),
            *held,
            Text(free, style="red" if available < 0 else ""),
            _today(line, currency, compact),
            utilization_bar(limit, reserved, drawn),
        )
        sums = totals.setdefault(currency, [0, 0, 0, 0])
        for index, value in enumerate(amounts):
            sums[index] += value
    if len(lines) > 1:
        table.rows[-1].end_section = True
        for currency, (limit, reserved, drawn, available) in sorted(totals.items()):
            table.add_row(
                Text("total", style="bold"),
                "",
                "",
                *([currency] if several else []),
                *_money_cells(currency, (limit, reserved, drawn, available), compact),
                "",
                utilization_bar(limit, reserved, drawn),
            )
    return table


def _lines_frame(
    lines: Sequence[Mapping[str, Any]], title: str | None, currencies: Sequence[str]
) -> Table:
    """The lines table's title, caption and columns (a currency column when the
    lines are in several)."""
    table = Table(
        title=title if title is not None else f"Lending lines ({len(lines)})",
        caption="bar: █ drawn  ▓ reserved  ░ available" if lines else "no lines yet",
        header_style="bold",
        show_edge=False,
    )
    if len(currencies) == 1:
        table.caption = f"amounts in {currencies[0]} · " + str(table.caption)
    table.add_column("Line", no_wrap=True)
    table.add_column("Funder", no_wrap=True)
    table.add_column("Status")
    if len(currencies) > 1:
        table.add_column("Cur")
    for name in ("Limit", "Reserved", "Drawn", "Available", "Today"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("Utilization", no_wrap=True)
    return table


def _amounts(line: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Limit, reserved, drawn and available (as served, else what the others leave)."""
    limit, reserved, drawn = _int(line, "limit"), _int(line, "reserved"), _int(line, "drawn")
    available = line.get("available")
    available = available if isinstance(available, int) else limit - reserved - drawn
    return limit, reserved, drawn, available


def _money_cells(currency: str, amounts: Sequence[int], compact: bool) -> list[str]:
    return [money(amount, currency, compact=compact) for amount in amounts]


def _today(line: Mapping[str, Any], currency: str, compact: bool) -> str:
    """Used today, and of what daily limit if the line has one."""
    today = money(_int(line, "usedToday"), currency, compact=compact)
    daily = line.get("dailyLimit")
    if isinstance(daily, int):
        today += "/" + money(daily, currency, compact=compact)
    return today


def line_rules_table(lines: Sequence[Mapping[str, Any]], title: str) -> Table:
    """What each line offers: the rules routing checks (paused lines in yellow)."""
    currencies = sorted({str(line.get("currency", "")) for line in lines})
    paused = [str(line.get("lineId")) for line in lines if line.get("status") != "ACTIVE"]
    table = Table(
        title=f"{title} ({', '.join(currencies)})" if len(currencies) == 1 else title,
        caption=f"not active, routing skips them: {', '.join(paused)}" if paused else None,
        header_style="bold",
        show_edge=False,
    )
    table.add_column("Line", no_wrap=True)
    table.add_column("Products", min_width=19)
    for name in ("Amounts", "Terms", "Grades", "Regions"):
        table.add_column(name)
    for name in ("APR", "Prio", "Limit", "Daily cap"):
        table.add_column(name, justify="right", no_wrap=True)
    for line in lines:
        currency = str(line.get("currency", ""))
        low = money(line.get("minAmount"), currency, compact=True)
        high = money(line.get("maxAmount"), currency, compact=True)
        daily = line.get("dailyLimit")
        active = line.get("status") == "ACTIVE"
        table.add_row(
            Text(str(line.get("lineId", "?")), style="" if active else "yellow"),
            _listed(line.get("products"), " "),
            f"{low}-{high}" if len(currencies) == 1 else f"{low}-{high} {currency}",
            _listed(line.get("terms"), "/"),
            _listed(line.get("creditGrades"), "/"),
            _listed(line.get("regions"), "/"),
            f"{_int(line, 'aprBps') / 100:.2f}%",
            str(line.get("priority", "")),
            money(_int(line, "limit"), currency, compact=True),
            money(daily, currency, compact=True) if isinstance(daily, int) else "-",
        )
    return table


def line_detail(line: Mapping[str, Any]) -> RenderableType:
    """One line's whole configuration and utilization, one fact a row."""
    currency = str(line.get("currency", ""))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()

    def amount(key: str) -> str:
        value = line.get(key)
        return f"{money(value, currency)} {currency}" if isinstance(value, int) else "-"

    status = str(line.get("status", ""))
    grid.add_row("line", f"{line.get('lineId')}  ({line.get('name')})")
    grid.add_row("funder", str(line.get("funderId", "")))
    grid.add_row("status", styled_status(status))
    grid.add_row("limit", amount("limit"))
    grid.add_row("daily cap", amount("dailyLimit"))
    grid.add_row("amounts", f"{amount('minAmount')} to {amount('maxAmount')}")
    grid.add_row("terms", _listed(line.get("terms")))
    grid.add_row("products", _listed(line.get("products")))
    grid.add_row("regions", _listed(line.get("regions")))
    grid.add_row("credit grades", _listed(line.get("creditGrades")))
    grid.add_row(
        "price, routing",
        f"APR {_int(line, 'aprBps') / 100:.2f}%  priority {line.get('priority')}"
        f"  weight {line.get('weight')}  hold {line.get('holdSeconds')} s",
    )
    window = f"{line.get('activeFrom') or 'always'} to {line.get('activeUntil') or 'open-ended'}"
    grid.add_row("active", f"{window}  (days in {line.get('timezone', '-')})")
    grid.add_row("reserved", amount("reserved"))
    grid.add_row("drawn", amount("drawn"))
    grid.add_row("available", amount("available"))
    grid.add_row("used today", f"{amount('usedToday')}  ({line.get('day', '-')})")
    grid.add_row(
        "utilization",
        utilization_bar(_int(line, "limit"), _int(line, "reserved"), _int(line, "drawn")),
    )
    grid.add_row(
        "version",
        f"{line.get('configVersion')}  created {line.get('createdAt')}"
        f"  updated {line.get('updatedAt')}",
    )
    return grid


def _listed(values: Any, separator: str = ", ") -> str:
    if not values:
        return "any"
    return separator.join(str(v) for v in values)


def order_view(order: Mapping[str, Any]) -> RenderableType:
    """One order: its facts, where it went and why, and its history."""
    currency = str(order.get("currency", ""))
    customer = order.get("customer") or {}
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    title = Text.assemble(
        ("Order ", "bold"), (str(order.get("orderId")), "bold"), "  ", styled_status(_s(order))
    )
    amount = order.get("amount")
    facts.add_row("amount", f"{money(amount, currency)} {currency}  ({amount} minor units)")
    facts.add_row("term", f"{order.get('termMonths')} months, product {order.get('product')}")
    facts.add_row(
        "customer",
        f"{customer.get('id')}  region {customer.get('region') or '-'}"
        f"  grade {customer.get('creditGrade') or '-'}",
    )
    facts.add_row("tenant", str(order.get("tenantId", "")))
    line = order.get("lineId")
    facts.add_row("line", f"{line} (funder {order.get('funderId')})" if line else "-")
    facts.add_row(
        "holds",
        f"reserved {money(order.get('reserved', 0), currency)}"
        f"  outstanding {money(order.get('outstanding', 0), currency)}"
        + (f"  hold until {order['holdExpiresAt']}" if order.get("holdExpiresAt") else ""),
    )
    if order.get("metadata"):
        facts.add_row("metadata", ", ".join(f"{k}={v}" for k, v in order["metadata"].items()))
    facts.add_row(
        "version",
        f"{order.get('version')}  created {order.get('createdAt')}"
        f"  updated {order.get('updatedAt')}",
    )
    parts: list[RenderableType] = [title, facts]
    decision = order.get("decision")
    if isinstance(decision, dict):
        parts.append(decision_table(decision))
    parts.append(history_table(order.get("history") or [], currency))
    return Group(*parts)


def decision_table(decision: Mapping[str, Any]) -> Table:
    table = Table(
        title=f"Decision ({decision.get('strategy')})",
        title_justify="left",
        header_style="bold",
        show_edge=False,
    )
    table.add_column("#", justify="right")
    table.add_column("Line", no_wrap=True)
    table.add_column("Outcome")
    table.add_column("Reason")
    styles = {"CLAIMED": "bold green", "ELIGIBLE": "green", "REFUSED": "yellow"}
    for index, candidate in enumerate(decision.get("candidates") or [], start=1):
        outcome = str(candidate.get("outcome", ""))
        code = candidate.get("code")
        shown = outcome if not code or code == outcome else f"{outcome} {code}"
        table.add_row(
            str(index),
            str(candidate.get("lineId", "")),
            Text(shown, style=styles.get(outcome, "red")),
            str(candidate.get("reason") or ""),
        )
    return table


def history_table(history: Iterable[Mapping[str, Any]], currency: str) -> Table:
    table = Table(title="History", title_justify="left", header_style="bold", show_edge=False)
    for name in ("At", "Status", "Line", "Event"):
        table.add_column(name, no_wrap=True)
    table.add_column("Amount", justify="right")
    for entry in history:
        amount = entry.get("amount")
        table.add_row(
            str(entry.get("at", "")),
            styled_status(str(entry.get("status", ""))),
            str(entry.get("lineId") or ""),
            str(entry.get("event") or ""),
            money(amount, currency) if isinstance(amount, int) else "",
        )
    return table


def outcome_table(orders: Sequence[Mapping[str, Any]], title: str = "Outcomes") -> Table:
    """Orders and amounts by status."""
    table = Table(title=title, header_style="bold", show_edge=False)
    table.add_column("Status")
    table.add_column("Orders", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Amount", justify="right")
    counts: dict[str, int] = {}
    amounts: dict[tuple[str, str], int] = {}
    for order in orders:
        status = _s(order)
        counts[status] = counts.get(status, 0) + 1
        key = (status, str(order.get("currency", "")))
        amounts[key] = amounts.get(key, 0) + _int(order, "amount")
    known = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    total = len(orders) or 1
    for status in known:
        shown = "  ".join(
            f"{money(amount, currency, compact=True)} {currency}"
            for (s, currency), amount in sorted(amounts.items())
            if s == status
        )
        table.add_row(
            styled_status(status), str(counts[status]), f"{counts[status] / total:.0%}", shown
        )
    if table.rows:
        table.rows[-1].end_section = True
    table.add_row(Text("total", style="bold"), str(len(orders)), "", "")
    return table


def _s(order: Mapping[str, Any]) -> str:
    return str(order.get("status", "?"))
