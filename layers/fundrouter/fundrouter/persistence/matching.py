"""The matcher's writes: an order and its line's capacity move in one transaction.

A claim is one ``TransactWriteItems`` of three writes: the line's counters (only if
its configuration is the one ranked, it is ACTIVE, inside its window and has room),
the day's usage (only if under the daily cap), and the order (only if still RECEIVED
at the version read), plus the history entries the order item sheds
(fundrouter.persistence.history). The cancellation reasons tell the three refusals apart.
Contention and throttling are retried by fundrouter.persistence.retries; what
outlasts the retries (Contended, Unavailable) fails the stream record, which Lambda
delivers again.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from fundrouter.domain.errors import DomainError
from fundrouter.domain.lifecycle import matched, unmatched
from fundrouter.domain.lines import LineRecord, LineRefusal, Move, StaleLineConfig, holding_moves
from fundrouter.domain.orders import Decision, Order, OrderStatus
from fundrouter.domain.shards import claim_on_shards
from fundrouter.persistence.history import spill_items
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import order_put
from fundrouter.persistence.retries import CONDITION_FAILED, DEFAULT_BACKOFF, Backoff, transact
from fundrouter.service.ports import ClaimAttempt, ClaimResult, Grouped, Room

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class DynamoMatchStore:
    client: "DynamoDBClient"
    orders: str
    lines: DynamoLineRepository
    backoff: Backoff = DEFAULT_BACKOFF

    def claim(
        self, order: Order, record: LineRecord, now: datetime, expires: datetime, decision: Decision
    ) -> ClaimAttempt:
        if record.shards:
            return self._claim_sharded(order, record, now, expires, decision)
        try:
            items = self.lines.claim_items(record, order.amount, now)
        except LineRefusal as too_big:
            # An amount no usage could make fit (above the daily cap itself).
            return ClaimAttempt(ClaimResult.LINE_REFUSED, too_big)
        after = _claimed(order, record, now, expires, decision)
        items = self.lines.with_counts(items, holding_moves(order, after))
        items += [order_put(self.orders, order, after), *spill_items(self.orders, order, after)]
        reasons = transact(self.client, items, self.backoff)
        if not reasons:
            return ClaimAttempt(ClaimResult.CLAIMED)
        if reasons[2].get("Code") == CONDITION_FAILED:
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        refusal = self.lines.explain_claim(record, order.amount, order.currency, now, reasons)
        return ClaimAttempt(ClaimResult.LINE_REFUSED, refusal)

    def claim_together(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> set[int] | Room | None:
        """Several orders' claims on one line in one transaction: the line and its day
        move by their sum, on the conditions one claim of that sum has, and each order
        moves out of RECEIVED from the version read. Nothing is written unless every
        order is claimed (an empty set). Otherwise: the positions of orders that had
        moved (the caller sends the others again); the Room the line had for the
        group, judged on the line as the refusal found it (the caller claims that
        many first); None when the refusal was not for room (a changed configuration,
        a paused line: the caller claims them one by one)."""
        line = record.line
        amounts = [order.amount for order, _ in group]
        currency = group[0][0].currency
        if record.shards:
            return self._together_sharded(group, record, now, expires)
        try:
            items = self.lines.claim_items(record, sum(amounts), now)
        except LineRefusal:  # the sum is above the daily cap itself: judged as read
            return _room(line.takes(amounts, currency, now))
        moved_to = [_claimed(o, record, now, expires, d) for o, d in group]
        counts: Counter[OrderStatus] = Counter()
        for (order, _), after in zip(group, moved_to, strict=True):
            for moves in holding_moves(order, after).values():
                counts.update(moves)
        items = self.lines.with_counts(items, {line.line_id: dict(counts)})
        first = len(items)
        pairs = list(zip((order for order, _ in group), moved_to, strict=True))
        items += [order_put(self.orders, order, after) for order, after in pairs]
        for order, after in pairs:
            items += spill_items(self.orders, order, after)
        reasons = transact(self.client, items, self.backoff)
        if not reasons:
            return set()
        orders = reasons[first : first + len(group)]
        moved = {i for i, reason in enumerate(orders) if reason.get("Code") == CONDITION_FAILED}
        if moved:
            return moved
        refused = self.lines.refused_line(record, now, reasons)
        return (
            None
            if isinstance(refused, DomainError)
            else _room(refused.takes(amounts, currency, now))
        )

    def _together_sharded(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> set[int] | Room | None:
        amounts = [order.amount for order, _ in group]
        currency = group[0][0].currency
        try:
            found = self._on_shards(group, record, now, expires)
        except LineRefusal:  # paused, outside its window: judged as read
            return _room(record.line.takes(amounts, currency, now))
        if isinstance(found, LineRecord):
            return _room(found.line.takes(amounts, currency, now))
        return set() if isinstance(found, int) else found

    def _claim_sharded(
        self, order: Order, record: LineRecord, now: datetime, expires: datetime, decision: Decision
    ) -> ClaimAttempt:
        try:
            found = self._on_shards([(order, decision)], record, now, expires)
        except LineRefusal as closed:  # paused, outside its window: judged as read
            return ClaimAttempt(ClaimResult.LINE_REFUSED, closed)
        if isinstance(found, int):
            return ClaimAttempt(ClaimResult.CLAIMED)
        if isinstance(found, set):
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        if found is None:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, StaleLineConfig(record.line.line_id))
        line = found.line
        refusal = line.admission_refusal(order.currency, now) or line.capacity_refusal(
            order.amount, now
        )
        return ClaimAttempt(ClaimResult.LINE_REFUSED, refusal)

    def _on_shards(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> int | set[int] | LineRecord | None:
        """The group's claim on one shard of a sharded line (domain.shards)."""
        total = sum(order.amount for order, _ in group)

        def attempt(line: LineRecord, shard: int, moves: Sequence[Move]) -> bool | set[int]:
            items = self.lines.claim_items(line, total, now, shard, moves)
            moved_to = [_claimed(o, line, now, expires, d, shard) for o, d in group]
            counts: Counter[OrderStatus] = Counter()
            for (order, _), after in zip(group, moved_to, strict=True):
                for step in holding_moves(order, after).values():
                    counts.update(step)
            items = self.lines.with_counts(items, {line.line.line_id: dict(counts)}, shard)
            first = len(items)
            pairs = list(zip((order for order, _ in group), moved_to, strict=True))
            items += [order_put(self.orders, order, after) for order, after in pairs]
            for order, after in pairs:
                items += spill_items(self.orders, order, after)
            items += self.lines.shard_moves(line, moves, [line.line.day_of(now)])
            reasons = transact(self.client, items, self.backoff)
            if not reasons:
                return True
            orders = reasons[first : first + len(group)]
            return {i for i, reason in enumerate(orders) if reason.get("Code") == CONDITION_FAILED}

        read = partial(self._read, record.line.line_id)
        return claim_on_shards(
            record,
            group[0][0].order_id,
            total,
            now,
            attempt=attempt,
            read=read,
            reshare=partial(self.lines.reshare, now=now),
        )

    def _read(self, line_id: str, day: str) -> LineRecord | None:
        return self.lines.get(line_id, [day])

    def mark_unmatched(self, order: Order, now: datetime, decision: Decision) -> bool:
        """False when the order had already moved on (another delivery decided)."""
        after = unmatched(order, now, decision)
        items = [order_put(self.orders, order, after), *spill_items(self.orders, order, after)]
        return not transact(self.client, items, self.backoff)


def _room(takes: int | None) -> Room | None:
    return None if takes is None else Room(takes)


def _claimed(  # noqa: PLR0917 - the claim's own five, and the shard
    order: Order,
    record: LineRecord,
    now: datetime,
    hold_expires_at: datetime,
    decision: Decision,
    shard: int | None = None,
) -> Order:
    """The order as its claim on the line (on `shard` of a sharded one) writes it."""
    line = record.line
    return matched(
        order,
        line_id=line.line_id,
        funder_id=line.config.funder_id,
        now=now,
        hold_expires_at=hold_expires_at,
        claim_day=line.day_of(now),
        decision=decision,
        shard=shard,
    )
