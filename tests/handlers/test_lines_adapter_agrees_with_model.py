"""The DynamoDB adapter enforces the capacity rules of the pure model with condition
expressions. Both are driven here with the same seeded random operation sequences
(1,000 of them) and must agree on every outcome and every counter."""

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fundrouter.domain.errors import DomainError
from fundrouter.domain.lines import Line, LineConfig, LineCounters, LineStatus
from fundrouter.persistence.lines import DynamoLineRepository, LineRecord

from tests.support.template import create_table_kwargs

SEQUENCES = int(os.environ.get("FUNDROUTER_MODEL_SEQUENCES", "1000"))
OPERATIONS_PER_SEQUENCE = 8
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: days roll over


@pytest.fixture
def client(aws: None) -> Any:
    return boto3.client("dynamodb")


def fresh_lines_table(client: Any, seed: int) -> DynamoLineRepository:
    """A table per sequence: moto copies every table on each transaction, so one
    table holding all sequences would make the run quadratic."""
    name = f"lines-{seed}"
    client.create_table(**create_table_kwargs("LinesTable", name))
    return DynamoLineRepository(client, name)


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


def run_sequence(seed: int, repository: DynamoLineRepository) -> None:
    rng = random.Random(seed)
    line_id = f"line-{seed}"
    config = random_config(rng)
    model = Line(line_id, config)
    repository.put_config(line_id, config, START)
    now = START
    days: set[str] = set()

    for step in range(OPERATIONS_PER_SEQUENCE):
        now += timedelta(minutes=rng.choice([1, 30, 90]))
        kind = rng.choice(
            ["claim", "claim", "claim", "release", "draw", "late_draw", "restore", "config"]
        )
        amount = rng.choice([1, 500, 1_000, 3_000, 9_000])
        day = model.day_of(now)
        days.add(day)
        label = f"seed {seed} step {step}: {kind} {amount} at {now.isoformat()}"

        if kind == "claim":
            currency = rng.choice(["CNY", "CNY", "CNY", "USD"])
            record = repository.get(line_id, sorted(days))
            assert record is not None
            # The read a claim needs anyway doubles as the check of every counter.
            assert_same_state(record, model, label)
            expected = outcome(model.claim, amount, currency, now)
            actual = outcome(repository.claim, record, amount, currency, now)
        elif kind == "release":
            day = rng.choice(sorted(days))
            expected = outcome(model.release, amount, day)
            actual = outcome(repository.release, line_id, amount, day)
        elif kind == "draw":
            # The undrawn rest goes back to the claim day's usage as well.
            drawn = rng.choice([amount, amount // 2 or 1, amount + 1])
            day = rng.choice(sorted(days))
            expected = outcome(model.draw, amount, drawn, day)
            actual = outcome(repository.draw, line_id, amount, drawn, day)
        elif kind == "late_draw":
            # Drawn whatever the room; both say whether there was room for it.
            day = rng.choice(sorted(days))
            fits = model.has_room(amount)
            expected = outcome(model.draw_late, amount, day)
            actual = outcome(repository.draw_late, line_id, amount, day)
            assert actual == ("ok", fits), label
        elif kind == "restore":
            expected = outcome(model.restore, amount)
            actual = outcome(repository.restore, line_id, amount)
        else:
            changes = rng.choice(
                [
                    {"limit": rng.choice([500, 2_000, 30_000])},
                    {"status": LineStatus.PAUSED},
                    {"status": LineStatus.ACTIVE},
                ]
            )
            new_config = config.model_copy(update=changes)
            expected = outcome(lambda config: config, new_config)
            actual = outcome(repository.put_config, line_id, new_config, now)
            config = new_config
            model = Line(line_id, config, model.counters)
            expected, actual = expected[0], actual[0]

        if expected[0] == "ok" and kind != "config":
            model = expected[1]
            expected, actual = "ok", actual[0]
        assert actual == expected, label

    stored = repository.get(line_id, sorted(days))
    assert stored is not None
    assert_same_state(stored, model, f"seed {seed} at the end")


def assert_same_state(stored: LineRecord, model: Line, label: str) -> None:
    expected_days = {day: used for day, used in model.counters.daily_used.items() if used}
    assert stored.line.counters == LineCounters(
        model.counters.reserved, model.counters.drawn, expected_days
    ), label
    assert stored.line.config == model.config, label


def test_adapter_and_model_agree_on_every_outcome_and_counter(client: Any) -> None:
    for seed in range(SEQUENCES):
        run_sequence(seed, fresh_lines_table(client, seed))
        client.delete_table(TableName=f"lines-{seed}")
