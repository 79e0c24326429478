"""The DynamoDB adapter enforces the capacity rules of the pure model with condition
expressions. The code the Lambdas run (the matcher's claim, DynamoMatchStore.claim;
the lifecycle's and the reconciler's commit, DynamoOrderEvents.commit, with the
transitions of fundrouter.domain.lifecycle) and the pure Line model are driven here
with the same seeded random sequences (1,000 of them) and must agree on every
outcome, every counter and the line's counts of its orders, after every step."""

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fundrouter.domain.errors import DomainError
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
from fundrouter.service.ports import ClaimResult

from tests.support.orders import Paths, counts_of
from tests.support.template import create_table_kwargs

SEQUENCES = int(os.environ.get("FUNDROUTER_MODEL_SEQUENCES", "1000"))
OPERATIONS_PER_SEQUENCE = 8
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: days roll over


@pytest.fixture
def client(aws: None) -> Any:
    return boto3.client("dynamodb")


def fresh_tables(client: Any, seed: int) -> tuple[DynamoLineRepository, Paths]:
    """Tables per sequence: moto copies every table on each transaction, so tables
    holding all sequences would make the run quadratic."""
    client.create_table(**create_table_kwargs("LinesTable", f"lines-{seed}"))
    client.create_table(**create_table_kwargs("OrdersTable", f"orders-{seed}"))
    lines = DynamoLineRepository(client, f"lines-{seed}")
    return lines, Paths(client, f"orders-{seed}", lines)


def random_config(rng: random.Random) -> LineConfig:
    return LineConfig.model_validate(
        {
            "funderId": "bank-a",
            "name": "Bank A consumer",
            "currency": "CNY",
            "limit": rng.choice([1_000, 5_000, 20_000]),
            "dailyLimit": rng.choice([None, 2_000, 8_000]),
            "minAmount": 1,
            "maxAmount": 20_000,
            "aprBps": 1290,
            "priority": 10,
            "weight": 50,
            "holdSeconds": 900,
            "status": rng.choice(["ACTIVE", "ACTIVE", "ACTIVE", "PAUSED"]),
            "activeUntil": rng.choice([None, "2026-11-25T00:00:00Z"]),
        }
    )


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


def run_sequence(seed: int, lines: DynamoLineRepository, paths: Paths) -> None:
    rng = random.Random(seed)
    line_id = f"line-{seed}"
    config = random_config(rng)
    model = Line(line_id, config)
    lines.put_config(line_id, config, START)
    now = START
    days: set[str] = set()
    orders: list[Order] = []  # every order of the sequence, as the model has it

    for step in range(OPERATIONS_PER_SEQUENCE):
        now += timedelta(minutes=rng.choice([1, 30, 90]))
        days.add(model.day_of(now))
        kind = rng.choice([*["claim"] * 3, *EVENTS, "expire", "config"])
        statuses = (
            EVENTS[kind][0] if kind in EVENTS else {OrderStatus.MATCHED, OrderStatus.APPROVED}
        )
        eligible = [i for i, o in enumerate(orders) if o.status in statuses]
        if kind != "config" and not eligible:
            kind = "claim"
        label = f"seed {seed} step {step}: {kind} at {now.isoformat()}"

        if kind == "claim":
            amount = rng.choice([1, 500, 1_000, 3_000, 9_000])
            label += f" {amount}"
            record = lines.get(line_id, sorted(days))
            assert record is not None
            expected = outcome(model.claim, amount, config.currency, now)
            attempt, order = paths.claim(record, amount, now)
            assert order is not None
            if attempt.result is ClaimResult.CLAIMED:
                assert expected[0] == "ok", label
                model = expected[1]
                orders.append(order)
            else:
                assert attempt.result is ClaimResult.LINE_REFUSED, label
                refusal = attempt.refusal
                assert refusal is not None
                assert expected == ("refused", type(refusal).__name__, refusal.message), label
                assert order.status is OrderStatus.RECEIVED, label
        elif kind == "config":
            changes = rng.choice(
                [
                    {"limit": rng.choice([500, 2_000, 30_000])},
                    {"status": LineStatus.PAUSED},
                    {"status": LineStatus.ACTIVE},
                ]
            )
            config = config.model_copy(update=changes)
            lines.put_config(line_id, config, now)
            model = Line(line_id, config, model.counters)
        else:
            index = rng.choice(eligible)
            before = orders[index]
            if kind == "expire":
                transition, event = expire(before, now), None
            else:
                event_type = EVENTS[kind][1]
                event = OrderEvent(
                    event_id=f"e-{step}",
                    type=event_type,
                    amount=event_amount(rng, event_type, before),
                )
                decided = outcome(apply_event, before, event, now)
                if decided[0] != "ok":
                    label += f": {decided}"
                    transition = None
                else:
                    transition = decided[1]
            if transition is not None:
                fits = model.has_room(transition.effect.amount) if transition.effect else True
                committed = paths.commit(before, transition, event, now)
                if committed.effect is not None and transition.effect is not None:
                    # Drawn late within the limit exactly when the model has room.
                    late = transition.effect.move is CapacityMove.LATE_DRAW
                    assert (committed.effect.move is CapacityMove.LATE_DRAW) == (late and fits)
                model = applied(model, committed.effect)
                orders[index] = committed.order

        stored = lines.get(line_id, sorted(days))
        assert stored is not None
        assert_same_state(stored, model, orders, label)


def assert_same_state(stored: LineRecord, model: Line, orders: list[Order], label: str) -> None:
    expected_days = {day: used for day, used in model.counters.daily_used.items() if used}
    assert stored.line.counters == LineCounters(
        model.counters.reserved, model.counters.drawn, expected_days
    ), label
    assert stored.line.config == model.config, label
    assert dict(stored.orders) == counts_of(orders, model.line_id), label


def test_adapter_and_model_agree_on_every_outcome_and_counter(client: Any) -> None:
    for seed in range(SEQUENCES):
        run_sequence(seed, *fresh_tables(client, seed))
        client.delete_table(TableName=f"lines-{seed}")
        client.delete_table(TableName=f"orders-{seed}")
