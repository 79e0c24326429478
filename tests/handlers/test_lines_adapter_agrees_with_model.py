"""The DynamoDB adapter enforces the capacity rules of the pure model with condition
expressions. The code the Lambdas run (the matcher's claim, DynamoMatchStore.claim,
and its group commit, claim_together: all or nothing; the lifecycle's and the
reconciler's commit, DynamoOrderEvents.commit, with the transitions of
fundrouter.domain.lifecycle) and the pure Line model are driven here
with the same seeded random sequences (1,000 of 10 steps) and must agree on every
outcome, every counter and the line's counts of its orders, after every step. A
third of the lines are sharded (K of 2 or 4 at first; K of 1 to 3 among the
configuration changes, made while orders hold them): the model is the unsharded
line, the adapter's counters the sums of its shards, and each shard holds exactly
its orders, the shares sum to the limit and the daily cap, and no shard has room
while another is short unless the line is closed."""

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fundrouter.domain.errors import DomainError
from fundrouter.domain.lifecycle import LATE_DISBURSE_GRACE as LATE_GRACE
from fundrouter.domain.lifecycle import (
    CapacityEffect,
    CapacityMove,
    EventType,
    OrderEvent,
    apply_event,
    expire,
)
from fundrouter.domain.lines import Line, LineConfig, LineCounters, LineStatus
from fundrouter.domain.orders import Order, OrderStatus
from fundrouter.persistence.lines import DynamoLineRepository, LineRecord
from fundrouter.service.ports import ClaimResult, Room

from tests.support.factories import line_config
from tests.support.moto_speed import speed_up_moto
from tests.support.orders import Paths, counts_of
from tests.support.template import create_table_kwargs

SEQUENCES = int(os.environ.get("FUNDROUTER_MODEL_SEQUENCES", "1000"))
OPERATIONS_PER_SEQUENCE = 10
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: days roll over


@pytest.fixture
def client(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    speed_up_moto(monkeypatch)  # no whole-table copies: every sequence shares the tables
    return boto3.client("dynamodb")


def random_config(rng: random.Random) -> LineConfig:
    return line_config(
        limit=rng.choice([1_000, 5_000, 20_000]),
        dailyLimit=rng.choice([None, 2_000, 8_000]),
        maxAmount=20_000,
        status=rng.choice(["ACTIVE", "ACTIVE", "ACTIVE", "PAUSED"]),
        activeUntil=rng.choice([None, "2026-11-25T00:00:00Z"]),
        shards=rng.choice([1, 1, 1, 1, 2, 4]),
    )


# The refusals a group's claim answers with the room the line had.
ROOM_REFUSALS = {"InsufficientCapacity", "DailyLimitReached"}


def outcome(action: Callable[..., Any], *args: Any) -> Any:
    try:
        return ("ok", action(*args))
    except DomainError as refusal:
        return ("refused", type(refusal).__name__, refusal.message)


def applied(line: Line, effect: CapacityEffect | None) -> Line:
    """The pure model's move for a committed transition's capacity effect."""
    if effect is None:
        return line
    match effect.move:
        case CapacityMove.RELEASE:
            assert effect.claim_day is not None
            return line.release(effect.amount, effect.claim_day)
        case CapacityMove.DRAW:
            return line.draw(effect.amount, effect.drawn, effect.claim_day)
        case CapacityMove.LATE_DRAW | CapacityMove.OVER_LIMIT_DRAW:
            return line.draw_late(effect.amount, effect.claim_day)
        case CapacityMove.RESTORE:
            return line.restore(effect.amount)


RESERVING = frozenset({OrderStatus.MATCHED, OrderStatus.APPROVED})
# Which orders each step may pick, and the event it sends them.
EVENTS = {
    "approve": ({OrderStatus.MATCHED}, EventType.APPROVED),
    "decline": ({OrderStatus.MATCHED, OrderStatus.APPROVED}, EventType.DECLINED),
    "cancel": ({OrderStatus.MATCHED, OrderStatus.APPROVED}, EventType.CANCELLED),
    "disburse": ({OrderStatus.MATCHED, OrderStatus.APPROVED}, EventType.DISBURSED),
    "repay": ({OrderStatus.DISBURSED}, EventType.REPAID),
    "late_disburse": ({OrderStatus.EXPIRED, OrderStatus.CANCELLED}, EventType.DISBURSED),
}


def event_amount(rng: random.Random, kind: EventType, order: Order) -> int | None:
    """Mostly a valid amount, sometimes one above what the order holds (refused)."""
    if kind is EventType.REPAID:
        return rng.choice([order.outstanding, order.outstanding // 2 or 1, order.outstanding + 1])
    if kind is EventType.DISBURSED:
        held = order.reserved or order.amount
        return rng.choice([held, held // 2 or 1, held + 1])
    return None


class Sequence:
    """One line, its orders, and the pure model of the line, moved step by step."""

    def __init__(self, seed: int, lines: DynamoLineRepository, paths: Paths) -> None:
        self.seed, self.lines, self.paths = seed, lines, paths
        self.rng = random.Random(seed)
        self.line_id = f"line-{seed}"
        self.config = random_config(self.rng)
        self.model = Line(self.line_id, self.config)
        lines.put_config(self.line_id, self.config, START)
        self.now = START
        self.days: set[str] = set()
        self.orders: list[Order] = []  # every order of the sequence, as the model has it
        self.last_read: LineRecord | None = None

    def run(self) -> None:
        for step in range(OPERATIONS_PER_SEQUENCE):
            rng = self.rng
            self.now += timedelta(minutes=rng.choice([1, 30, 90]))
            self.days.add(self.model.day_of(self.now))
            kind = rng.choice(
                [*["claim"] * 3, *EVENTS, "disburse", "late_disburse", "expire", "config"]
            )
            statuses = EVENTS[kind][0] if kind in EVENTS else RESERVING
            eligible = [i for i, o in enumerate(self.orders) if o.status in statuses]
            if kind == "late_disburse" and rng.random() < 0.9:
                # Mostly within the grace after the hold was given back (else refused).
                grace = [i for i in eligible if self.now - self.orders[i].updated_at <= LATE_GRACE]
                eligible = grace or eligible
            if kind != "config" and not eligible:
                kind = "claim"
            label = f"seed {self.seed} step {step}: {kind} at {self.now.isoformat()}"
            if kind == "claim" and rng.random() < 0.3:
                self.claim_together(label)
            elif kind == "claim":
                self.claim(label)
            elif kind == "config":
                self.reconfigure(
                    rng.choice(
                        [
                            {"limit": rng.choice([500, 2_000, 30_000])},
                            {"status": LineStatus.PAUSED},
                            {"status": LineStatus.ACTIVE},
                            {"shards": rng.choice([1, 2, 3])},
                        ]
                    )
                )
            else:
                self.move(kind, rng.choice(eligible), f"e-{step}")
            stored = self.lines.get(self.line_id, sorted(self.days))
            assert stored is not None
            assert_same_state(stored, self.model, self.orders, label)

    def read(self) -> LineRecord:
        """The line as a claim reads it; a sharded one half the time as it was at the
        claim before (a matcher's cached view: counters and shares stale, the
        configuration the same), so the shards' conditions, not the read, must keep
        each within its share."""
        record = self.lines.get(self.line_id, sorted(self.days))
        assert record is not None
        stale, self.last_read = self.last_read, record
        if stale is not None and stale.shards and stale.config_version == record.config_version:
            return stale if self.rng.random() < 0.5 else record
        return record

    def claim(self, label: str) -> None:
        amount = self.rng.choice([1, 500, 1_000, 3_000, 9_000])
        record = self.read()
        expected = outcome(self.model.claim, amount, self.config.currency, self.now)
        attempt, order = self.paths.claim(record, amount, self.now)
        assert order is not None
        label += f" {amount}: {expected}"
        if attempt.result is ClaimResult.CLAIMED:
            assert expected[0] == "ok", label
            self.model = expected[1]
            self.orders.append(order)
            return
        assert attempt.result is ClaimResult.LINE_REFUSED, label
        refusal = attempt.refusal
        assert refusal is not None
        assert expected == ("refused", type(refusal).__name__, refusal.message), label
        assert order.status is OrderStatus.RECEIVED, label

    def claim_together(self, label: str) -> None:
        """Two to four orders in one transaction (the matcher's group commit): all of
        them when the model takes each in turn; else nothing written, and the room the
        line had (how many the model took before refusing one for room), or None
        when it refused for another reason (paused, outside its window)."""
        amounts = [self.rng.choice([1, 500, 1_000, 3_000]) for _ in range(self.rng.randint(2, 4))]
        record = self.read()
        model, taken, refusal = self.model, 0, None
        for amount in amounts:
            expected = outcome(model.claim, amount, self.config.currency, self.now)
            if expected[0] != "ok":
                refusal = expected[1]
                break
            model, taken = expected[1], taken + 1
        moved, orders = self.paths.claim_together(record, amounts, self.now)
        label += f" together {amounts}: {taken} taken, then {refusal}"
        if refusal is not None:
            room = Room(taken) if refusal in ROOM_REFUSALS else None
            assert moved == room, label
            assert {o.status for o in orders} == {OrderStatus.RECEIVED}, label
            return
        assert moved == set(), label
        assert {o.status for o in orders} == {OrderStatus.MATCHED}, label
        self.model = model
        self.orders += orders

    def reconfigure(self, changes: dict[str, Any]) -> None:
        self.config = self.config.model_copy(update=changes)
        self.lines.put_config(self.line_id, self.config, self.now)
        self.model = Line(self.line_id, self.config, self.model.counters)

    def move(self, kind: str, index: int, event_id: str) -> None:
        """The event (or expiry) on one order, committed as the Lambdas commit it."""
        before = self.orders[index]
        if kind == "late_disburse" and self.rng.random() < 0.5:
            # The line just full: the late disbursement goes over its limit.
            counters = self.model.counters
            self.reconfigure({"limit": max(1, counters.reserved + counters.drawn)})
        event = None
        if kind == "expire":
            transition = expire(before, self.now)
        else:
            kind_of_event = EVENTS[kind][1]
            amount = event_amount(self.rng, kind_of_event, before)
            event = OrderEvent(event_id=event_id, type=kind_of_event, amount=amount)
            decided = outcome(apply_event, before, event, self.now)
            if decided[0] != "ok":
                return  # refused before any write: the checks after the step see none
            transition = decided[1]
        effect = transition.effect
        fits = effect is None or self.model.has_room(effect.amount)
        committed = self.paths.commit(before, transition, event, self.now)
        if effect is not None and effect.move is CapacityMove.LATE_DRAW:
            # Drawn late within the limit exactly when the model has room for it.
            assert committed.effect is not None
            assert (committed.effect.move is CapacityMove.LATE_DRAW) == fits
        self.model = applied(self.model, committed.effect)
        self.orders[index] = committed.order


def assert_same_state(stored: LineRecord, model: Line, orders: list[Order], label: str) -> None:
    expected_days = {day: used for day, used in model.counters.daily_used.items() if used}
    assert stored.line.counters == LineCounters(
        model.counters.reserved, model.counters.drawn, expected_days
    ), label
    assert stored.line.config == model.config, label
    assert dict(stored.orders) == counts_of(orders, model.line_id), label
    if stored.shards:
        config = model.config
        assert sum(s.cap for s in stored.shards) == config.limit, label
        if config.daily_limit is not None:
            assert sum(s.day_cap or 0 for s in stored.shards) == config.daily_limit, label
        for shard in stored.shards:
            on = [o for o in orders if o.line_id == model.line_id and (o.shard or 0) == shard.index]
            assert shard.reserved == sum(o.reserved for o in on if o.status in RESERVING), label
            assert shard.drawn == sum(o.outstanding for o in on), label
        # No shard has room while another is short (else the line could lend past its
        # limit); with room in all, none holds more than its share.
        rooms = [s.room for s in stored.shards]
        assert min(rooms) >= 0 or max(rooms) <= 0 or stored.short, label


def test_adapter_and_model_agree_on_every_outcome_and_counter(client: Any) -> None:
    client.create_table(**create_table_kwargs("LinesTable", "lines"))
    client.create_table(**create_table_kwargs("OrdersTable", "orders"))
    lines = DynamoLineRepository(client, "lines")
    paths = Paths(client, "orders", lines)  # order ids go on counting across sequences
    for seed in range(SEQUENCES):
        Sequence(seed, lines, paths).run()
