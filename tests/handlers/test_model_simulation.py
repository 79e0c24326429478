"""The whole-system model simulation (tests/support/simulation) run over many seeds, the
proof that its moto shortcuts change no outcome, and the bugs it found."""

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from fundrouter.domain import orders as domain_orders
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import Order
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.matching import LineCatalog, MatchOutcome, MatchService

from tests.support.factories import line_body, order_request
from tests.support.moto_speed import speed_up_moto
from tests.support.simulation import Simulation
from tests.support.simulation.driver import matcher_handler, reconciler_handler
from tests.support.template import create_table_kwargs
from tests.support.world import NO_WAIT, api

TOTAL_STEPS: Final = int(os.environ.get("FUNDROUTER_SIM_STEPS", "10000"))
STEPS_PER_SEED: Final = int(os.environ.get("FUNDROUTER_SIM_STEPS_PER_SEED", "250"))
FIRST_SEED: Final = int(os.environ.get("FUNDROUTER_SIM_FIRST_SEED", "0"))
ONE_SEED: Final = os.environ.get("FUNDROUTER_SIM_SEED")
SHORTCUT_SEED: Final = 3
SHORTCUT_STEPS: Final = 100


def sequences() -> list[tuple[int, int]]:
    """(seed, steps) of every sequence to run: one when replaying."""
    if ONE_SEED is not None:
        return [(int(ONE_SEED), STEPS_PER_SEED)]
    count = math.ceil(TOTAL_STEPS / STEPS_PER_SEED)
    return [
        (FIRST_SEED + i, min(STEPS_PER_SEED, TOTAL_STEPS - i * STEPS_PER_SEED))
        for i in range(count)
    ]


@pytest.fixture
def quiet_handlers() -> Iterator[None]:
    """The handlers log every request and print their metrics; thousands of steps of
    that would bury a failure's message."""
    roots = {m.logger.name.split(".")[0] for m in (api, matcher_handler, reconciler_handler)}
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in roots
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.fixture
def client(aws: None) -> Any:
    # Unsigned: moto checks no signature, and SigV4 costs more than some steps do.
    return boto3.client("dynamodb", config=Config(signature_version=UNSIGNED))


def test_random_sequences_keep_the_invariant_after_every_step(
    client: Any, quiet_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed_up_moto(monkeypatch)
    # A short recent history, so entries leave the order item in most sequences.
    monkeypatch.setattr(domain_orders, "RECENT_HISTORY", 3)
    taken = 0
    for seed, steps in sequences():
        simulation = Simulation(client, seed)
        try:
            simulation.run(steps)
        except Exception as error:
            raise AssertionError(simulation.report(error)) from error
        finally:
            simulation.drop()
        taken += steps
    assert taken >= min(TOTAL_STEPS, 10_000) or ONE_SEED is not None


def test_the_moto_shortcuts_change_no_outcome(
    client: Any, quiet_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sequence, with cancelled transactions and injected faults, run on moto as
    it is and then with the shortcuts: the same steps, the same answers, the same
    items stored."""
    cancelled: list[bool] = []
    client.meta.events.register(
        "after-call.dynamodb.TransactWriteItems",
        lambda parsed, **_: cancelled.append("CancellationReasons" in parsed),
    )
    outcomes = []
    for faster in (False, True):
        if faster:
            speed_up_moto(monkeypatch)
        simulation = Simulation(client, SHORTCUT_SEED, trace_length=None)
        simulation.run(SHORTCUT_STEPS)
        outcomes.append((list(simulation.trace), simulation.stored()))
        simulation.drop()

    assert outcomes[0] == outcomes[1]
    assert any("[fault: " in step for step in outcomes[0][0]), "no fault was injected"
    assert sum(cancelled) >= 10, "too few transactions were cancelled to compare rollbacks"


# ---------------------------------------------------------------- bugs found


# Found by this simulation: a daily cap lowered under a warm matcher below the
# order's amount made the claim raise out of the matcher instead of refusing the line.
def test_a_daily_cap_lowered_under_a_warm_matcher_refuses_the_line(
    dynamodb: Any, orders_table: str
) -> None:
    dynamodb.create_table(**create_table_kwargs("LinesTable", "bug-lines"))
    lines = DynamoLineRepository(dynamodb, "bug-lines")
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    config = line_body(name="Bank A", limit=1_000_000, maxAmount=100_000, aprBps=1000, priority=1)
    lines.put_config("capped", LineConfig.model_validate(config), now)
    catalog = LineCatalog(lines, ttl_seconds=60, monotonic=lambda: 0.0)
    catalog.lines()  # a warm container: the configuration is cached
    capped = LineConfig.model_validate(config | {"dailyLimit": 10_000})
    lines.put_config("capped", capped, now)  # the operator sets a daily cap of 10,000
    orders = DynamoOrderRepository(dynamodb, orders_table)
    request = order_request(orderId="o-1", amount=20_000, customer={"id": "c-1"}, metadata={})
    order = Order.received("tenant-a", request, now)
    assert orders.add(order) is None
    store = DynamoMatchStore(dynamodb, orders_table, lines, NO_WAIT)

    report = MatchService(catalog, store, lambda: now).match(order)

    # The warm claim is refused, not raised; the refusal is then decided on the
    # current view (the cap change bumped the marker), where the line is ineligible.
    assert report.outcome is MatchOutcome.UNMATCHED
    assert [(c.line_id, c.outcome, c.code) for c in report.candidates] == [
        ("capped", "INELIGIBLE", "DAILY_LIMIT_REACHED")
    ]
    stored = orders.get("tenant-a", "o-1")
    assert stored is not None
    assert stored.status.value == "UNMATCHED"
