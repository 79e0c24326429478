"""AWS faults on the order events route and the reads behind it, injected on moto
through botocore's before-call hook. Contention and throttling are retried; what
outlasts the retries is 409 order_busy or 503 service_unavailable, both with
Retry-After, and writes nothing. Keys BatchGetItem leaves unprocessed are read
again after a pause, never taken for missing. Every success ends with the line's
counters equal to its orders (design.md's invariant)."""

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.retries import Backoff

from tests.support.faults import Injected, always, cancelled, conflict, error, unprocessed
from tests.support.world import LINES_TABLE, World

# A partial disbursement writes the order, its event record, the line and the day.
DISBURSE_ITEMS = 4
THROTTLED = [
    error("ThrottlingException"),
    error("ProvisionedThroughputExceededException"),
    error("RequestLimitExceeded"),
    error("InternalServerError"),
    cancelled("None", "None", "ThrottlingError", "None"),
]


@pytest.fixture
def world(orders_table: str) -> World:
    world = World(orders_table)
    world.matched_order()
    return world


def transactions(world: World, plan: list[Any]) -> Injected:
    return Injected(world.client, "TransactWriteItems", plan)


def assert_disbursed(world: World, status: int, body: dict[str, Any]) -> None:
    assert (status, body["status"], body["outstanding"]) == (200, "DISBURSED", 1_000_000)
    assert world.line() == (0, 1_000_000, 9_000_000)
    world.assert_invariant()


@pytest.mark.parametrize(
    "answer",
    [conflict(DISBURSE_ITEMS, at=2), error("TransactionConflictException")],
    ids=["reason", "exception"],
)
def test_one_transaction_conflict_on_an_order_event_is_retried_not_a_500(
    world: World, answer: dict[str, Any]
) -> None:
    injected = transactions(world, [answer])

    status, body = world.call("order_event_disbursed_partly")

    assert injected.answered == 1
    assert_disbursed(world, status, body)


def test_contention_outlasting_the_retries_is_409_order_busy_and_writes_nothing(
    world: World,
) -> None:
    transactions(world, always(conflict(DISBURSE_ITEMS, at=2)))
    before = world.everything()

    response = world.respond("order_event_disbursed_partly")

    assert response["statusCode"] == 409
    assert '"code":"order_busy"' in response["body"]
    assert response["headers"]["Retry-After"] == "1"
    assert world.everything() == before


@pytest.mark.parametrize("answer", THROTTLED, ids=lambda a: a["Error"]["Code"])
def test_throttling_once_is_retried(world: World, answer: dict[str, Any]) -> None:
    transactions(world, [answer])

    status, body = world.call("order_event_disbursed_partly")

    assert_disbursed(world, status, body)


@pytest.mark.parametrize("answer", THROTTLED, ids=lambda a: a["Error"]["Code"])
def test_lasting_throttling_is_503_with_retry_after_and_writes_nothing(
    world: World, answer: dict[str, Any]
) -> None:
    transactions(world, always(answer))
    before = world.everything()

    response = world.respond("order_event_disbursed_partly")

    assert response["statusCode"] == 503
    assert '"code":"service_unavailable"' in response["body"]
    assert response["headers"]["Retry-After"] == "1"
    assert world.everything() == before


@pytest.mark.parametrize(
    "answer",
    [
        cancelled("ConditionalCheckFailed"),  # fewer reasons than items
        cancelled(None, None, "TransactionConflict", None),  # a reason without a code
    ],
    ids=["short-list", "missing-code"],
)
def test_cancellation_reasons_are_read_defensively(world: World, answer: dict[str, Any]) -> None:
    transactions(world, [answer])

    status, body = world.call("order_event_disbursed_partly")

    assert_disbursed(world, status, body)


def test_unprocessed_keys_of_an_existing_line_are_read_again_not_a_404(world: World) -> None:
    injected = Injected(world.client, "BatchGetItem", [unprocessed, unprocessed])

    status, body = world.call("get_line")

    assert injected.answered == 2
    assert (status, body["reserved"]) == (200, 1_250_000)


def test_an_event_reads_its_order_and_event_record_in_one_transactional_read(
    world: World,
) -> None:
    """BatchGetItem reads item by item: it could see a concurrent delivery's order
    moved but not yet its event record, and refuse a duplicate as not allowed."""
    calls: list[str] = []
    world.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )

    status, body = world.call("order_event_disbursed_partly")

    assert calls == ["TransactGetItems", "TransactWriteItems"]
    assert_disbursed(world, status, body)


def test_a_read_cancelled_by_a_write_in_flight_is_retried(world: World) -> None:
    injected = Injected(
        world.client, "TransactGetItems", [cancelled("TransactionConflict", "None")]
    )

    status, body = world.call("order_event_disbursed_partly")

    assert injected.answered == 1
    assert_disbursed(world, status, body)


@pytest.mark.parametrize(
    ("route", "operation"),
    [("get_order", "GetItem"), ("submit_order", "PutItem"), ("get_line", "BatchGetItem")],
)
@pytest.mark.parametrize(
    "fault",
    [
        lambda: EndpointConnectionError(endpoint_url="https://dynamodb"),
        lambda: ReadTimeoutError(endpoint_url="https://dynamodb"),
        lambda: ConnectionClosedError(endpoint_url="https://dynamodb"),
        lambda: ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "op"
        ),
    ],
    ids=["connect", "read-timeout", "reset", "throttled"],
)
def test_aws_failing_for_now_outside_a_transaction_is_503_with_retry_after(
    world: World, route: str, operation: str, fault: Any
) -> None:
    def fail(**_: Any) -> None:
        raise fault()

    world.client.meta.events.register(f"before-call.dynamodb.{operation}", fail)
    before = world.everything()

    response = world.respond(route)

    assert response["statusCode"] == 503, response["body"]
    assert '"code":"service_unavailable"' in response["body"]
    assert response["headers"]["Retry-After"] == "1"
    assert world.everything() == before


def test_keys_left_unprocessed_past_the_retries_are_503_not_missing(world: World) -> None:
    # Unread six times, then read: the old loop took the seventh answer at once.
    Injected(world.client, "BatchGetItem", [unprocessed] * 6)
    before = world.everything()

    response = world.respond("get_line")

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    assert world.everything() == before


def test_unprocessed_keys_are_asked_for_again_after_a_jittered_pause(world: World) -> None:
    pauses: list[float] = []
    lines = DynamoLineRepository(world.client, LINES_TABLE, Backoff(sleep=pauses.append))
    Injected(world.client, "BatchGetItem", [unprocessed, unprocessed])

    record = lines.get("bank-a-consumer", ["2026-11-24"])

    assert record is not None
    assert record.line.counters.reserved == 1_250_000
    assert len(pauses) == 2
    assert 0 <= pauses[0] <= 0.05
    assert 0 <= pauses[1] <= 0.1
