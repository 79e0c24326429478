"""The model following every change the Orders stream shows, in commit order."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from fundrouter.domain import orders as domain_orders
from fundrouter.domain.orders import Order, OrderRequest
from fundrouter.persistence.codec import from_item
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.orders import order_from_item, order_ids

from tests.support.simulation.driver import lambda_record, matches_filter
from tests.support.simulation.model import (
    ALLOWED_FROM,
    ARROWS,
    LATE_FROM,
    LEADS_TO,
    Changes,
    ModelLine,
    ModelOrder,
    SimulationFailure,
    expect,
    history_ledger,
    ranked,
    static_refusal,
)


class Follower:
    """The model following the Orders stream, refusing any change the design does not allow."""

    # ------------------------------------------------------------ expectations

    def expect_nothing_written(self) -> None:
        changes = self.absorb(set())
        expect(changes.empty, lambda: f"wrote {changes}")

    def expect_resource(self, answer: dict[str, Any], order: ModelOrder) -> None:
        shown = tuple(
            answer.get(k)
            for k in (
                "tenantId",
                "orderId",
                "status",
                "version",
                "lineId",
                "reserved",
                "outstanding",
            )
        )
        modelled = (
            order.tenant,
            order.order_id,
            order.status,
            order.version,
            order.line_id,
            order.reserved,
            order.outstanding,
        )
        expect(shown == modelled, lambda: f"the API shows {shown}, the model has {modelled}")

    # ------------------------------------------------------------ following the stream

    def absorb(self, allowed: set[str]) -> Changes:
        """Apply every change the Orders stream shows since the last step to the model,
        refusing any the design does not allow or this step could not cause; queue the
        records the matcher's filter lets through."""
        changes = Changes()
        for record in self.stream.new_records():
            if record["eventName"] == "REMOVE":
                raise SimulationFailure(f"an item was deleted: {record['dynamodb']['Keys']}")
            sort_key = record["dynamodb"]["Keys"]["sk"]["S"]
            if sort_key == "ORDER":
                self._absorb_order(record, allowed, changes)
            elif sort_key.startswith(HIST_PREFIX):
                # Checked against the model's history by check_state, once the whole
                # transaction (whose order item may come later in the stream) is in.
                expect(record["eventName"] == "INSERT", f"{sort_key} written twice")
                keys = order_ids(record["dynamodb"]["Keys"]["pk"]["S"])
                assert keys is not None
                changes.spilled.append((keys, sort_key))
            else:
                self._absorb_event_record(record, changes)
            if matches_filter(self.filter, record):
                self.pending.append(lambda_record(record, self.region))
        return changes

    def _absorb_event_record(self, record: dict[str, Any], changes: Changes) -> None:
        values = from_item(record["dynamodb"]["NewImage"])
        expect("result" not in values, "the event record copies the order")
        order_key = order_ids(values["pk"])
        assert order_key is not None
        key = (*order_key, values["eventId"])
        expect(record["eventName"] == "INSERT", lambda: f"event {key} recorded twice")
        expect(key in self.sent_events, lambda: f"event {key} recorded but never sent")
        expect(values["type"] == self.sent_events[key]["type"], f"event {key} has another type")
        self.recorded[key] = {"body": self.sent_events[key], "version": values["version"]}
        changes.events.append(key)

    def _absorb_order(self, record: dict[str, Any], allowed: set[str], changes: Changes) -> None:
        after = order_from_item(record["dynamodb"]["NewImage"])
        key = (after.tenant_id, after.order_id)
        if record["eventName"] == "INSERT":
            request = self.expected_inserts.pop(key, None)
            expect("insert" in allowed and request is not None, f"{key} appeared unasked")
            assert request is not None
            expect(
                (after.status.value, after.version, after.amount, after.content_hash)
                == (
                    "RECEIVED",
                    1,
                    request["amount"],
                    OrderRequest.model_validate(request).content_hash(),
                )
                and key not in self.orders,
                lambda: f"intake stored {after}",
            )
            self.orders[key] = ModelOrder(
                key[0], key[1], request, updated_at=after.updated_at, history=list(after.history)
            )
            changes.inserted.append(key)
            return
        before = order_from_item(record["dynamodb"]["OldImage"])
        order = self.orders.get(key)
        expect(order is not None, f"{key} changed but was never accepted")
        assert order is not None
        cause = self._check_move(order, before, after, allowed)
        EFFECTS[cause](self, order, before, after)
        self._follow(order, after)
        changes.moved.append((key, before.status.value, after.status.value, after.history[-1]))

    def _check_move(self, order: ModelOrder, before: Order, after: Order, allowed: set[str]) -> str:
        """The write is the next version of what the model holds, along an arrow, with
        one history entry more, from a cause this step could have; returns the cause."""
        key, old, new = order.key, before.status.value, after.status.value
        expect(
            (before.version, old) == (order.version, order.status),
            lambda: f"{key} changed from v{before.version} {old}, model has v{order.version}",
        )
        expect(after.version == before.version + 1, lambda: f"{key} jumped to v{after.version}")
        expect(new in ARROWS[old], lambda: f"{key} moved {old} -> {new}: not an arrow")
        entry = after.history[-1]
        whole = [*order.history, entry]
        expect(
            after.history_total == len(whole)
            and after.history == whole[-len(after.history) :]
            and len(after.history) <= domain_orders.RECENT_HISTORY,
            lambda: f"{key}'s history was rewritten",
        )
        expect(entry.status.value == new, lambda: f"{key}'s last history entry is {entry}")
        unchanged = ("amount", "currency", "content_hash", "created_at", "product", "term_months")
        expect(
            all(getattr(after, name) == getattr(before, name) for name in unchanged),
            lambda: f"{key}'s content changed",
        )
        if entry.event is None:
            cause = {"MATCHED": "match", "UNMATCHED": "unmatched", "EXPIRED": "expire"}.get(new, "")
        else:
            cause = entry.event
            late = cause == "DISBURSED" and old in LATE_FROM
            expect(
                new in LEADS_TO.get(cause, ()) and (old in ALLOWED_FROM[cause] or late),
                lambda: f"{key}: {cause} moved it {old} -> {new}",
            )
        kind = "event" if entry.event else cause
        expect(kind in allowed, lambda: f"{key} moved {old} -> {new} ({cause}) in this step")
        return cause

    def _follow(self, order: ModelOrder, after: Order) -> None:
        order.status, order.version = after.status.value, after.version
        order.line_id, order.claim_day = after.line_id, after.claim_day
        order.reserved, order.outstanding = after.reserved, after.outstanding
        order.hold_expires_at, order.updated_at = after.hold_expires_at, after.updated_at
        order.declined = list(after.declined_line_ids)
        order.history.append(after.history[-1])
        ledger, reserved, outstanding = history_ledger(order.history, order.amount)
        expect(
            (ledger, reserved, outstanding) == (order.ledger, order.reserved, order.outstanding),
            lambda: (
                f"{order.key}: its history says {ledger} {reserved} {outstanding},"
                f" the model has {order.ledger} {order.reserved} {order.outstanding}"
            ),
        )

    # ------------------------------------------------------------ effects on lines

    def _line(self, order: ModelOrder, line_id: str | None) -> ModelLine:
        line = self.lines.get(line_id or "")
        expect(line is not None, lambda: f"{order.key} names line {line_id}")
        assert line is not None
        return line

    def on_match(self, order: ModelOrder, before: Order, after: Order) -> None:
        at, amount = after.history[-1].at, order.amount
        line = self._line(order, after.line_id)
        if self.fresh.get((order.tenant, order.order_id, before.version)):
            self._expect_choice(order, before, at, line.line_id)
        policy = self.policies[order.tenant]
        day = line.day(at)
        refusal = (
            static_refusal(line, order, policy, list(before.declined_line_ids))
            or line.window_refusal(at)
            or (
                f"limit {line.config['limit']}, held {line.held}"
                if amount > line.available
                else None
            )
            or line.daily_refusal(day, amount)
        )
        expect(
            refusal is None, lambda: f"{order.key} claimed {amount} on {line.line_id}: {refusal}"
        )
        hold = at + timedelta(seconds=line.config["holdSeconds"])
        claimed = (after.reserved, after.claim_day, after.hold_expires_at, after.funder_id)
        expect(
            claimed == (amount, day, hold, line.config["funderId"]),
            lambda: f"{order.key} matched as {claimed}, expected {(amount, day, hold)}",
        )
        line.reserved += amount
        line.daily[day] = line.daily.get(day, 0) + amount
        line.matched_total += amount
        order.ledger.claimed += amount

    def on_unmatched(self, order: ModelOrder, before: Order, after: Order) -> None:
        if self.fresh.get((order.tenant, order.order_id, before.version)):
            self._expect_choice(order, before, after.history[-1].at, None)
        expect(after.line_id is None and after.reserved == 0, f"{order.key} unmatched holding")

    def _expect_choice(
        self, order: ModelOrder, before: Order, at: datetime, chosen: str | None
    ) -> None:
        """With fresh lines the matcher ranks what the model ranks: the lines that may
        take the order and have the room (the day's usage is the claim's to check),
        in the tenant's strategy, claiming the first whose day has room."""
        policy = self.policies[order.tenant]
        amount = order.amount
        fitting = [
            line
            for line in self.lines.values()
            if static_refusal(line, order, policy, list(before.declined_line_ids)) is None
            and line.window_refusal(at) is None
            and line.available >= amount
            and (line.config.get("dailyLimit") is None or amount <= line.config["dailyLimit"])
        ]
        order_of_lines = ranked(fitting, policy["strategy"] if policy else "PRIORITY")
        best = next(
            (
                line.line_id
                for line in order_of_lines
                if line.daily_refusal(line.day(at), amount) is None
            ),
            None,
        )
        expect(
            chosen == best,
            lambda: (
                f"{order.key} ({amount}) went to {chosen}; the model ranks"
                f" {[line.line_id for line in order_of_lines]} ({policy}) and picks {best}"
            ),
        )

    def _release(self, order: ModelOrder, before: Order, after: Order) -> None:
        expect(after.reserved == after.outstanding == 0, lambda: f"{order.key} still holds")
        amount = before.reserved
        if not amount:
            return
        line = self._line(order, before.line_id)
        day = before.claim_day or ""
        line.reserved -= amount
        line.daily[day] = line.daily.get(day, 0) - amount
        expect(line.reserved >= 0 and line.daily[day] >= 0, f"{line.line_id} went negative")
        order.ledger.released += amount

    def on_expire(self, order: ModelOrder, before: Order, after: Order) -> None:
        at, hold = after.history[-1].at, before.hold_expires_at
        expect(hold is not None and at >= hold, lambda: f"{order.key} expired at {at}, hold {hold}")
        self._release(order, before, after)

    def on_declined(self, order: ModelOrder, before: Order, after: Order) -> None:
        declined = [*before.declined_line_ids, before.line_id]
        expect(
            after.line_id is None and after.declined_line_ids == declined,
            lambda: f"{order.key} declined as {after.line_id} {after.declined_line_ids}",
        )
        self._release(order, before, after)

    def on_cancelled(self, order: ModelOrder, before: Order, after: Order) -> None:
        self._release(order, before, after)

    def on_approved(self, order: ModelOrder, before: Order, after: Order) -> None:
        expect(
            (after.line_id, after.reserved) == (before.line_id, before.reserved),
            f"{order.key} approval moved capacity",
        )

    def on_disbursed(self, order: ModelOrder, before: Order, after: Order) -> None:
        drawn = after.history[-1].amount or 0
        late = before.status.value in LATE_FROM
        held = order.amount if late else before.reserved
        expect(
            0 < drawn <= held
            and (after.outstanding, after.reserved, after.line_id) == (drawn, 0, before.line_id),
            lambda: f"{order.key} disbursed {drawn} of {held} as {after}",
        )
        line = self._line(order, before.line_id)
        day = before.claim_day or ""
        # Over the limit exactly when a late disbursement found no room on the line.
        beyond = late and drawn > line.available
        expect(
            after.over_limit == beyond,
            lambda: f"{order.key} over limit {after.over_limit}; {drawn} on {line}",
        )
        if late:
            line.daily[day] = line.daily.get(day, 0) + drawn
            order.ledger.claimed += drawn
        else:
            line.daily[day] = line.daily.get(day, 0) - (before.reserved - drawn)
            order.ledger.released += before.reserved - drawn
        line.reserved -= before.reserved
        line.drawn += drawn
        line.over_limit_by_late_draw |= beyond
        order.ledger.disbursed += drawn

    def on_repaid(self, order: ModelOrder, before: Order, after: Order) -> None:
        repaid = after.history[-1].amount or 0
        expect(
            0 < repaid <= before.outstanding
            and after.outstanding == before.outstanding - repaid
            and (after.status.value == "REPAID") == (after.outstanding == 0),
            lambda: f"{order.key} repaid {repaid} of {before.outstanding} as {after}",
        )
        line = self._line(order, before.line_id)
        line.drawn -= repaid
        expect(line.drawn >= 0, f"{line.line_id} drawn went negative")
        order.ledger.repaid += repaid


EFFECTS: Final[dict[str, Callable[[Follower, ModelOrder, Order, Order], None]]] = {
    "match": Follower.on_match,
    "unmatched": Follower.on_unmatched,
    "expire": Follower.on_expire,
    "APPROVED": Follower.on_approved,
    "DECLINED": Follower.on_declined,
    "CANCELLED": Follower.on_cancelled,
    "DISBURSED": Follower.on_disbursed,
    "REPAID": Follower.on_repaid,
}
