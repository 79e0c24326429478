"""Order events: the order's transition, its line's capacity effect and the record of
the event id commit in one ``TransactWriteItems``.

The event record (``sk = EVENT#{eventId}`` in the order's partition) holds the
event's type and content hash and the order version it produced, not a copy of the
order (whose size would make the records grow with the order's age): a repeated
event changes nothing and is answered with the order as it stands. Its
``attribute_not_exists`` condition makes two concurrent deliveries of one event
commit once. History entries the write moves off the order item are put in the same
transaction (fundrouter.persistence.history). Contention and throttling are retried by
fundrouter.persistence.retries (Contended, Unavailable after that).
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.lifecycle import CapacityEffect, CapacityMove, OrderEvent, Transition
from fundrouter.domain.lines import LineRecord, borrowing, holding_moves
from fundrouter.domain.orders import Order, OrderStatus, spilled_history
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.history import spill_items
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import ORDER_SK, order_from_item, order_pk, order_put
from fundrouter.persistence.retries import (
    CONDITION_FAILED,
    DEFAULT_BACKOFF,
    Backoff,
    transact,
    transact_get,
)
from fundrouter.service.ports import Commit, StoredEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_PREFIX: Final = "EVENT#"
TRANSACTION_ITEMS: Final = 100  # TransactWriteItems' limit


type Outcome = Commit | Exception


def _fitting(expiring: Sequence[tuple[Order, Transition]]) -> int:
    """How many of `expiring`, from the first, one transaction holds: each order's put
    and spills, the line's update and one give-back per claim day (at least one)."""
    used, days = 1, set()
    for count, (before, transition) in enumerate(expiring):
        day = transition.effect.claim_day if transition.effect is not None else None
        cost = 1 + len(spilled_history(before, transition.order)) + (day not in days)
        if count and used + cost > TRANSACTION_ITEMS:
            return count
        used += cost
        days.add(day)
    return len(expiring)


def _releases(transition: Transition, line_id: str | None, shard: int | None) -> bool:
    """A release of a reservation, on the line (and shard), with the day it was
    claimed on."""
    effect = transition.effect
    return (
        effect is not None
        and effect.move is CapacityMove.RELEASE
        and effect.claim_day is not None
        and effect.line_id == line_id
        and effect.shard == shard
    )


class CapacityDisagrees(Exception):
    """The line refused an effect its order says it holds: the counters and the
    orders disagree. Nothing was written; the reconciler's audit reports it."""


@dataclass(frozen=True)
class DynamoOrderEvents:
    client: "DynamoDBClient"
    table: str
    lines: DynamoLineRepository
    backoff: Backoff = DEFAULT_BACKOFF

    def load(
        self, tenant_id: str, order_id: str, event_id: str
    ) -> tuple[Order | None, StoredEvent | None]:
        """The order and, if already recorded, the event, in one transactional read: a
        concurrent delivery's transaction is seen whole or not at all, never as the
        order moved without its event record (BatchGetItem could see that)."""
        pk = {"S": order_pk(tenant_id, order_id)}
        keys = [{"pk": pk, "sk": {"S": ORDER_SK}}, {"pk": pk, "sk": {"S": EVENT_PREFIX + event_id}}]
        gets = [{"Get": {"TableName": self.table, "Key": key}} for key in keys]
        order_item, event_item = transact_get(self.client, gets, self.backoff)
        order = order_from_item(order_item) if order_item else None
        stored = StoredEvent(str(from_item(event_item)["contentHash"])) if event_item else None
        return order, stored

    def commit(
        self, before: Order, transition: Transition, event: OrderEvent | None, now: datetime
    ) -> Commit:
        """Without an event (the reconciler's expiry) no event record is written. A
        late disbursement the line has no room for writes nothing: LINE_FULL."""
        after = transition.order
        items = [order_put(self.table, before, after)]
        if event is not None:
            items.append(self._event_record(after, event, now))
        capacity = self._capacity_items(transition.effect)
        if capacity is None:
            return Commit.LINE_FULL
        # The line's counts of its orders by status move with the order, APPROVED too;
        # the history spill goes last, so the reasons of the others keep their places.
        shard = before.shard if before.line_id is not None else after.shard
        items += self.lines.with_counts(capacity, holding_moves(before, after), shard)
        items += spill_items(self.table, before, after)
        reasons = transact(self.client, items, self.backoff)
        if not reasons:
            return Commit.COMMITTED
        codes = [r.get("Code") for r in reasons]
        if event is not None and codes[1] == CONDITION_FAILED:
            return Commit.EVENT_EXISTS
        if codes[0] == CONDITION_FAILED:
            return Commit.ORDER_MOVED
        effect = transition.effect
        if effect is not None and effect.move is CapacityMove.LATE_DRAW:
            return Commit.LINE_MOVED  # the room read is gone: decide again on a new read
        raise CapacityDisagrees(
            f"line {effect and effect.line_id} refused {effect} for order {before.order_id}"
        )

    def expire_together(self, expiring: Sequence[tuple[Order, Transition]]) -> list[Outcome]:
        """Expiries of holds on one line (the reconciler's), in as few transactions as
        DynamoDB's 100 items allow: each order's put on the version and status it was
        read at and its history spill, and one release of the line by the orders' sum
        (each claim day by its part) with the line's counts moved. An order that moved
        meanwhile is left out (ORDER_MOVED) and the rest sent again. A transaction that
        fails otherwise is tried again order by order, so one order's fault stays its
        own. One outcome (a Commit, or the error) per order, in order."""
        line_id = expiring[0][0].line_id if expiring else None
        shard = expiring[0][0].shard if expiring else None
        outcomes: dict[int, Outcome] = {
            i: self._alone(before, transition)
            for i, (before, transition) in enumerate(expiring)
            if not _releases(transition, line_id, shard)
        }
        pending = [i for i in range(len(expiring)) if i not in outcomes]
        while pending:
            chosen = pending[: _fitting([expiring[i] for i in pending])]
            try:
                moved = self._expire_group([expiring[i] for i in chosen])
            except Exception:
                outcomes |= {i: self._alone(*expiring[i]) for i in chosen}
            else:
                # Nothing was written when an order had moved: the others go again.
                outcomes |= dict.fromkeys((chosen[m] for m in moved), Commit.ORDER_MOVED)
                if not moved:
                    outcomes |= dict.fromkeys(chosen, Commit.COMMITTED)
            pending = [i for i in pending if i not in outcomes]
        return [outcomes[i] for i in range(len(expiring))]

    def _alone(self, before: Order, transition: Transition) -> Outcome:
        try:
            return self.commit(before, transition, None, transition.order.updated_at)
        except Exception as error:
            return error

    def _expire_group(self, group: list[tuple[Order, Transition]]) -> set[int]:
        """One transaction: the positions in `group` of the orders that had moved
        (none: it committed). CapacityDisagrees when the line itself refused."""
        line_id, shard = str(group[0][0].line_id), group[0][0].shard
        by_day: Counter[str] = Counter()
        counts: Counter[OrderStatus] = Counter()
        for before, transition in group:
            effect = transition.effect
            if effect is not None and effect.claim_day is not None:
                by_day[effect.claim_day] += effect.amount
            for moved_counts in holding_moves(before, transition.order).values():
                counts.update(moved_counts)
        moves = {line_id: {status: step for status, step in counts.items() if step}}
        items = [order_put(self.table, before, transition.order) for before, transition in group]
        items += self.lines.with_counts(
            self.lines.release_items(line_id, by_day, shard), moves, shard
        )
        for before, transition in group:
            items += spill_items(self.table, before, transition.order)
        reasons = transact(self.client, items, self.backoff)
        orders = reasons[: len(group)]
        moved = {i for i, reason in enumerate(orders) if reason.get("Code") == CONDITION_FAILED}
        if reasons and not moved:
            raise CapacityDisagrees(f"line {line_id} refused a release its orders hold")
        return moved

    def _event_record(self, after: Order, event: OrderEvent, now: datetime) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(
                    {
                        "pk": order_pk(after.tenant_id, after.order_id),
                        "sk": EVENT_PREFIX + event.event_id,
                        "eventId": event.event_id,
                        "type": event.type.value,
                        "contentHash": event.content_hash(),
                        "version": after.version,
                        "recordedAt": format_timestamp(now),
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _capacity_items(self, effect: CapacityEffect | None) -> list[dict[str, Any]] | None:
        """The line's writes for `effect`; None when a late draw finds no room."""
        if effect is None:
            return []
        match effect.move:
            case CapacityMove.RELEASE:
                if effect.claim_day is None:
                    raise CapacityDisagrees(f"reservation on {effect.line_id} has no claim day")
                return self.lines.release_items(
                    effect.line_id, {effect.claim_day: effect.amount}, effect.shard
                )
            case CapacityMove.DRAW:
                return self.lines.draw_items(
                    effect.line_id, effect.amount, effect.drawn, effect.claim_day, effect.shard
                )
            case CapacityMove.LATE_DRAW:
                return self._late_draw_items(effect)
            case CapacityMove.OVER_LIMIT_DRAW:
                return self._over_limit_items(effect)
            case CapacityMove.RESTORE:
                return self.lines.restore_items(effect.line_id, effect.amount, effect.shard)

    def _over_limit_items(self, effect: CapacityEffect) -> list[dict[str, Any]]:
        """Drawn past the limit, unconditionally; a sharded line is closed to claims
        on every shard as well (fundrouter.persistence.lines.closing_items)."""
        record = self.lines.get(effect.line_id)
        sharded = record is not None and bool(record.shards)
        items = self.lines.late_draw_items(
            effect.line_id, effect.amount, effect.claim_day, None, effect.shard, close=sharded
        )
        if record is not None and sharded:
            items += self.lines.closing_items(record, effect.shard)
        return items

    def _room_moved_in(self, record: LineRecord, effect: CapacityEffect) -> LineRecord:
        """A sharded line with room for a late disbursement, but not on the order's
        shard: room moved there from the others first (each move conditioned, see
        DynamoLineRepository.move_room), so it is drawn within the limit exactly when
        the line as a whole has room, as on an unsharded line."""
        limits_only = [replace(shard, day_cap=None) for shard in record.shards]
        for move in borrowing(limits_only, effect.shard or 0, effect.amount, "") or []:
            self.lines.move_room(record, move, [])
        return self.lines.get(effect.line_id) or record

    def _late_draw_items(self, effect: CapacityEffect) -> list[dict[str, Any]] | None:
        """Conditioned on the room the line (the order's shard of a sharded one) has as
        read now; None when it has none."""
        record = self.lines.get(effect.line_id)
        if record is None:
            raise CapacityDisagrees(f"order holds line {effect.line_id}, which is gone")
        if record.shards and effect.amount > record.shard(effect.shard).room:
            record = self._room_moved_in(record, effect)
        if effect.amount > record.shard(effect.shard).room:
            return None
        return self.lines.late_draw_items(
            effect.line_id, effect.amount, effect.claim_day, record, effect.shard
        )
