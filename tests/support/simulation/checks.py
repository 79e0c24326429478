"""After every step: the stored items against the invariant and the model, exactly."""

from typing import Any

from fundrouter.domain.orders import HistoryEntry
from fundrouter.persistence.codec import from_item
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.orders import order_ids

from tests.support.simulation.driver import plain, stored_items
from tests.support.simulation.model import HOLDING, RESERVING, ModelLine, ModelOrder, expect


class StoredState:
    """The stored items against docs/design.md's invariant and the model."""

    # ------------------------------------------------------------ the stored state

    def check_state(self) -> None:
        """docs/design.md's invariant on the stored items, and the stored items against the
        model, exactly. Read from moto's tables in-process: a Scan through the SDK
        would serialize every item and cost more than the step itself."""
        self.doing = "checking the stored state"
        sums = {line_id: [0, 0] for line_id in self.lines}
        seen: set[tuple[str, str]] = set()
        event_items = 0
        spilled: dict[tuple[str, str], dict[int, HistoryEntry]] = {}
        recent: dict[tuple[str, str], int] = {}
        for item in stored_items(self.raw, self.orders_table):
            attrs = item.attrs
            sort_key = plain(attrs["sk"])
            if sort_key.startswith(HIST_PREFIX):
                keys = order_ids(plain(attrs["pk"]))
                assert keys is not None
                values = {k: plain(v) for k, v in attrs.items() if k not in {"pk", "sk"}}
                number = int(sort_key.removeprefix(HIST_PREFIX))
                spilled.setdefault(keys, {})[number] = HistoryEntry.model_validate(values)
                continue
            if sort_key != "ORDER":
                event_items += 1
                continue
            order = self._check_order(attrs)
            seen.add(order.key)
            recent[order.key] = len(attrs["history"].value)
            if order.status in RESERVING:
                sums[order.line_id or ""][0] += order.reserved
            elif order.status == "DISBURSED":
                sums[order.line_id or ""][1] += order.outstanding
        expect(seen == set(self.orders), lambda: f"orders lost: {set(self.orders) - seen}")
        expect(event_items == len(self.recorded), "event records differ from the events")
        for key, order in self.orders.items():
            stored = spilled.pop(key, {})
            wanted = dict(enumerate(order.history[: len(order.history) - recent[key]]))
            expect(stored == wanted, f"{key}'s stored history is not the model's")
        expect(not spilled, lambda: f"history of unknown orders: {set(spilled)}")
        self._check_lines(sums)

    def _check_order(self, attrs: dict[str, Any]) -> ModelOrder:
        key = (plain(attrs["tenantId"]), plain(attrs["orderId"]))
        found = self.orders.get(key)
        expect(found is not None, lambda: f"{key} is stored but was never accepted")
        assert found is not None
        order = found
        stored = tuple(
            plain(attrs.get(name))
            for name in ("status", "version", "lineId", "reserved", "outstanding", "lineKey")
        )
        modelled = (order.status, order.version, order.line_id, order.reserved, order.outstanding)
        expect(stored[:5] == modelled, lambda: f"{order.key} stored {stored}, model {modelled}")
        if order.status in HOLDING:
            amounts = (order.reserved, order.outstanding)
            expected = (order.amount, 0) if order.status in RESERVING else (0, order.outstanding)
            expect(
                stored[5] == order.line_id in self.lines
                and amounts == expected
                and order.outstanding >= 0,
                lambda: f"{order.key} {order.status} holds {amounts} on {stored[5]}",
            )
        else:
            expect(
                stored[5] is None and order.reserved == order.outstanding == 0,
                lambda: f"{order.key} {order.status} still holds {stored}",
            )
        ledger = order.ledger
        expect(
            ledger.claimed == order.reserved + order.outstanding + ledger.repaid + ledger.released
            and ledger.disbursed == order.outstanding + ledger.repaid,
            lambda: f"{order.key} lost money: {ledger}, {order.reserved} {order.outstanding}",
        )
        return order

    def _check_lines(self, sums: dict[str, list[int]]) -> None:
        stored: dict[str, dict[str, Any]] = {}
        days: dict[str, dict[str, int]] = {line_id: {} for line_id in self.lines}
        for item in stored_items(self.raw, self.lines_table):
            pk, sk = plain(item.attrs["pk"]), plain(item.attrs["sk"])
            if sk == "LINE":
                stored[pk.removeprefix("LINE#")] = from_item(item.to_json()["Attributes"])
            elif plain(item.attrs.get("used")):  # a day's usage: LINE#{id}#DAY#{day} / DAY
                line_id, _, day = f"{pk}#{sk}".removeprefix("LINE#").partition("#DAY#")
                days[line_id][day.removesuffix("#DAY")] = plain(item.attrs["used"])
        expect(set(stored) == set(self.lines), lambda: f"lines stored: {sorted(stored)}")
        for line_id, line in self.lines.items():
            self._check_line(line, stored[line_id], sums[line_id], days[line_id])

    @staticmethod
    def _check_line(
        line: ModelLine, values: dict[str, Any], sums: list[int], days: dict[str, int]
    ) -> None:
        """docs/design.md's invariant on one line, then the line against the model."""
        line_id = line.line_id
        reserved, drawn, held = values["reserved"], values["drawn"], values["held"]
        limit = values["config"]["limit"]
        expect(
            [reserved, drawn] == sums and held == reserved + drawn,
            lambda: (
                f"invariant broken on {line_id}: reserved {reserved}, drawn {drawn},"
                f" held {held}; its orders hold {sums}"
            ),
        )
        if held <= limit:
            line.over_limit_by_operator = line.over_limit_by_late_draw = False
        expect(
            held <= limit or line.over_limit_by_operator or line.over_limit_by_late_draw,
            lambda: f"{line_id} holds {held} over its limit {limit}",
        )
        config = values["config"]
        shown = (reserved, drawn, values.get("matchedTotal", 0), limit, config["status"])
        modelled = (line.reserved, line.drawn, line.matched_total, line.config["limit"])
        expect(
            shown == (*modelled, line.config["status"])
            and config.get("dailyLimit") == line.config["dailyLimit"],
            lambda: f"{line_id} stored {shown}, model {line}",
        )
        used = {day: amount for day, amount in line.daily.items() if amount}
        expect(days == used, lambda: f"{line_id} days {days}, model {used}")
