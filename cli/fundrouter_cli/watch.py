"""`fundrouter watch`: status changes as they happen, by polling the newest orders.

There is no push channel to the CLI (business systems subscribe to EventBridge), so
the watcher lists the newest orders every interval and reports what moved since the
last poll. Each order's history says every status it went through (its 20 newest, and
`historyTotal` counts them all), so a change that came and went between two polls is
still reported. Pure but for the printing in main.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from fundrouter_cli.render import money, styled_status


@dataclass(frozen=True)
class Seen:
    status: str
    version: int
    history_length: int  # entries seen: the order's historyTotal then


@dataclass(frozen=True)
class Change:
    order_id: str
    at: str
    before: str | None
    after: str
    version: int | None  # the order's version: on its latest change only
    line_id: str | None
    event: str | None
    amount: int | None
    order_amount: int
    currency: str


def snapshot(orders: Iterable[Mapping[str, Any]]) -> dict[str, Seen]:
    return {
        str(o.get("orderId")): Seen(str(o.get("status")), _int(o.get("version")), _total(o))
        for o in orders
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _total(order: Mapping[str, Any]) -> int:
    """Entries the order ever had; its history lists the newest of them (all of them
    from a server older than the count)."""
    return _int(order.get("historyTotal")) or len(order.get("history") or [])


def changes(
    seen: Mapping[str, Seen], orders: Iterable[Mapping[str, Any]]
) -> tuple[list[Change], dict[str, Seen]]:
    """What moved in `orders` since `seen`, oldest first, and the new state to keep
    (the old entries of orders no longer listed are kept too)."""
    found: list[Change] = []
    state = dict(seen)
    for order in orders:
        order_id = str(order.get("orderId"))
        version = _int(order.get("version"))
        before = seen.get(order_id)
        if before is not None and before.version == version:
            continue
        found += _order_changes(order, before, version)
        state[order_id] = Seen(str(order.get("status")), version, _total(order))
    found.sort(key=lambda change: (change.at, change.order_id))
    return found, state


def _order_changes(order: Mapping[str, Any], before: Seen | None, version: int) -> list[Change]:
    """The order's history entries since `before`, each a change from the status before
    it (the latest carries the version); a new version without a new entry is one
    change to the order's status as it is (a decision recorded, a field touched)."""
    history = [entry for entry in order.get("history") or [] if isinstance(entry, dict)]
    start = before.history_length if before is not None else 0
    total = _total(order)
    first = total - len(history)  # the number of history[0]
    previous = before.status if before is not None else None
    if first < start <= total:
        previous = str(history[start - 1 - first].get("status"))
    fresh = history[max(start - first, 0) :]
    found = []
    for index, entry in enumerate(fresh):
        status = str(entry.get("status"))
        latest = index == len(fresh) - 1
        found.append(_change(order, entry, previous, status, version if latest else None))
        previous = status
    if total <= start:
        current = {"at": order.get("updatedAt", ""), "lineId": order.get("lineId")}
        was = before.status if before is not None else None
        found.append(_change(order, current, was, str(order.get("status")), version))
    return found


def _change(
    order: Mapping[str, Any],
    entry: Mapping[str, Any],
    before: str | None,
    after: str,
    version: int | None,
) -> Change:
    amount = entry.get("amount")
    return Change(
        str(order.get("orderId")),
        str(entry.get("at", "")),
        before,
        after,
        version,
        entry.get("lineId"),
        entry.get("event"),
        amount if isinstance(amount, int) else None,
        _int(order.get("amount")),
        str(order.get("currency", "")),
    )


def describe(change: Change) -> Text:
    """One line: time, order, old -> new status, line, amounts, version."""
    clock = change.at[11:23] if len(change.at) >= 23 else change.at
    text = Text(f"{clock:<12} ", style="grey50")
    text.append(f"{change.order_id:<28} ")
    if change.before is not None:
        text.append_text(styled_status(change.before))
        text.append(" → ")
    else:
        text.append("new ", style="grey50")
    text.append_text(styled_status(change.after))
    text.append(f"  {change.line_id or '-'}")
    text.append(f"  {money(change.order_amount, change.currency)} {change.currency}")
    if change.event:
        text.append(f"  ({change.event}", style="grey50")
        if change.amount is not None:
            text.append(f" {money(change.amount, change.currency)}", style="grey50")
        text.append(")", style="grey50")
    if change.version is not None:
        text.append(f"  v{change.version}", style="grey50")
    return text
