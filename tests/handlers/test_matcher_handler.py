"""The MatcherFunction on moto, driven by the stream batches in events/matcher: the
claim transaction, its cancellation reasons, redelivery, and injected contention.
After every scenario the line's counters are compared with the orders they hold."""

import json
from datetime import UTC, datetime
from functools import partial
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from fundrouter.domain.routing import RoutingPolicy, Strategy
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderRepository, order_from_item
from fundrouter.persistence.retries import Backoff
from fundrouter.service.matching import LineCatalog, MatchService

from tests.support import factories
from tests.support.aws import FakeLambdaContext, scan_all
from tests.support.events import load_event
from tests.support.handlers import handler_module
from tests.support.orders import Paths, counts_of
from tests.support.requests import Requests
from tests.support.template import create_table_kwargs

matcher = handler_module("matcher", "matcher_handler")
NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
LINES_TABLE = "fundrouter-test-lines"


line_config = partial(factories.line_config, limit=5_000_000, minAmount=10_000)


@pytest.fixture
def client(orders_table: str) -> Any:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(**create_table_kwargs("LinesTable", LINES_TABLE))
    return dynamodb


@pytest.fixture
def lines(client: Any) -> DynamoLineRepository:
    return DynamoLineRepository(client, LINES_TABLE)


@pytest.fixture
def orders(client: Any, orders_table: str) -> DynamoOrderRepository:
    return DynamoOrderRepository(client, orders_table)


def make_service(client: Any, orders_table: str, attempts: int = 4) -> MatchService:
    lines = DynamoLineRepository(client, LINES_TABLE)
    store = DynamoMatchStore(client, orders_table, lines, Backoff(attempts, sleep=lambda _: None))
    return MatchService(LineCatalog(lines), store, lambda: NOW)


@pytest.fixture
def service(client: Any, orders_table: str) -> MatchService:
    return make_service(client, orders_table)


def stored_from(event: dict[str, Any], client: Any, orders_table: str) -> None:
    """Put each order of a stream batch in the table, as intake had done."""
    for record in event["Records"]:
        client.put_item(TableName=orders_table, Item=record["dynamodb"]["NewImage"])


def run(event: dict[str, Any], service: MatchService) -> dict[str, Any]:
    response = matcher.handle(event, FakeLambdaContext(), service)
    return dict(response)


def order(orders: DynamoOrderRepository, order_id: str = "shop-20261124-0001") -> Any:
    found = orders.get("demotenantclient0000000001", order_id)
    assert found is not None
    return found


def assert_counters_match_orders(
    client: Any, orders_table: str, lines: DynamoLineRepository
) -> None:
    """The invariant of docs/design.md: each line's reserved is the sum of its MATCHED
    and APPROVED orders, and reserved + drawn never exceeds the limit; and the line
    counts its orders by status."""
    held: dict[str, int] = {}
    stored = [order_from_item(item) for item in scan_all(client, orders_table)]
    for order in stored:
        if order.status.value in {"MATCHED", "APPROVED"} and order.line_id:
            held[order.line_id] = held.get(order.line_id, 0) + order.reserved
    for record in lines.list_lines():
        line = record.line
        assert line.counters.reserved == held.get(line.line_id, 0), line.line_id
        assert line.counters.reserved + line.counters.drawn <= line.config.limit
        assert record.orders == counts_of(stored, line.line_id), line.line_id


def test_new_order_is_matched_to_the_first_ranked_line_in_one_transaction(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
    service: MatchService,
) -> None:
    lines.put_config("bank-a-consumer", line_config(priority=10), NOW)
    lines.put_config("trust-b", line_config(funderId="trust-b", priority=20), NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)
    requests = Requests(client)

    response = run(event, service)
    requests_made = list(requests.names)

    matched = order(orders)
    assert response == {"batchItemFailures": []}
    assert matched.status.value == "MATCHED"
    assert (matched.line_id, matched.funder_id, matched.reserved) == (
        "bank-a-consumer",
        "bank-a",
        1250000,
    )
    assert matched.claim_day == "2026-11-24"
    assert matched.hold_expires_at == datetime(2026, 11, 24, 10, 15, 5, tzinfo=UTC)
    assert matched.version == 2
    assert [(c.line_id, c.outcome) for c in matched.decision.candidates] == [
        ("bank-a-consumer", "CLAIMED"),
        ("trust-b", "ELIGIBLE"),
    ]
    assert [h.status.value for h in matched.history] == ["RECEIVED", "MATCHED"]
    # Cold container: the change marker, the lines (keys, then items), the tenant's
    # policy, the claim.
    assert requests_made == ["GetItem", "Query", "BatchGetItem", "GetItem", "TransactWriteItems"]
    assert_counters_match_orders(client, orders_table, lines)


def test_with_the_configuration_cached_a_match_costs_one_transaction(
    client: Any, orders_table: str, lines: DynamoLineRepository, service: MatchService
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    first = load_event("matcher/new_order.json")
    stored_from(first, client, orders_table)
    run(first, service)
    second = load_event("matcher/malformed_record.json")
    second["Records"] = second["Records"][1:]
    stored_from(second, client, orders_table)
    requests = Requests(client)

    run(second, service)

    assert requests.names == ["TransactWriteItems"]


def test_order_that_fits_no_line_is_unmatched_with_every_reason(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
    service: MatchService,
) -> None:
    lines.put_config("small", line_config(maxAmount=1_000_000), NOW)
    lines.put_config("paused", line_config(status="PAUSED"), NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)

    run(event, service)

    unmatched = order(orders)
    assert unmatched.status.value == "UNMATCHED"
    assert unmatched.line_id is None
    assert {(c.line_id, c.code, c.reason) for c in unmatched.decision.candidates} == {
        ("paused", "LINE_PAUSED", "line is PAUSED"),
        ("small", "AMOUNT_ABOVE_MAX", "amount above maxAmount 1000000"),
    }
    assert_counters_match_orders(client, orders_table, lines)


def test_a_line_that_filled_up_since_the_read_sends_the_claim_to_the_next_line(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
) -> None:
    lines.put_config("bank-a-consumer", line_config(priority=10, limit=2_000_000), NOW)
    lines.put_config("trust-b", line_config(funderId="trust-b", priority=20), NOW)
    catalog = LineCatalog(lines)
    catalog.lines()  # read and cached while bank-a still has room
    service = MatchService(catalog, DynamoMatchStore(client, orders_table, lines), lambda: NOW)
    # Another claim takes most of bank-a after the catalog was read and cached.
    record = lines.get("bank-a-consumer")
    assert record is not None
    Paths(client, orders_table, lines).claimed(record, 1_500_000, NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)

    run(event, service)

    matched = order(orders)
    assert matched.line_id == "trust-b"
    refused = matched.decision.candidates[0]
    assert (refused.line_id, refused.outcome, refused.code) == (
        "bank-a-consumer",
        "REFUSED",
        "INSUFFICIENT_CAPACITY",
    )
    assert refused.reason == "insufficient capacity: available 500000 < amount 1250000"


def test_duplicate_delivery_in_one_batch_claims_once(
    client: Any, orders_table: str, lines: DynamoLineRepository, service: MatchService
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    event = load_event("matcher/duplicate_delivery.json")
    stored_from(event, client, orders_table)

    response = run(event, service)

    assert response == {"batchItemFailures": []}
    record = lines.get("bank-a-consumer")
    assert record is not None
    assert record.line.counters.reserved == 1250000
    assert_counters_match_orders(client, orders_table, lines)


def test_replaying_the_stream_changes_nothing(
    client: Any, orders_table: str, lines: DynamoLineRepository, service: MatchService
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)
    run(event, service)
    before = sorted(
        json.dumps(i, sort_keys=True)
        for i in scan_all(client, orders_table) + scan_all(client, LINES_TABLE)
    )

    run(event, make_service(client, orders_table))

    after = sorted(
        json.dumps(i, sort_keys=True)
        for i in scan_all(client, orders_table) + scan_all(client, LINES_TABLE)
    )
    assert after == before


def test_requeued_order_is_never_offered_to_the_line_that_declined_it(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
    service: MatchService,
) -> None:
    lines.put_config("bank-a-consumer", line_config(priority=1), NOW)
    lines.put_config("trust-b", line_config(funderId="trust-b", priority=20), NOW)
    event = load_event("matcher/requeued_order.json")
    stored_from(event, client, orders_table)

    run(event, service)

    matched = order(orders)
    assert matched.line_id == "trust-b"
    excluded = next(c for c in matched.decision.candidates if c.line_id == "bank-a-consumer")
    assert (excluded.outcome, excluded.code) == ("INELIGIBLE", "EXCLUDED")


def test_a_malformed_record_fails_alone(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
    service: MatchService,
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    event = load_event("matcher/malformed_record.json")
    stored_from({"Records": event["Records"][1:]}, client, orders_table)

    response = run(event, service)

    assert response == {"batchItemFailures": [{"itemIdentifier": "100000000000000000003"}]}
    assert order(orders, "shop-20261124-0002").status.value == "MATCHED"


def conflicting(client: Any, failures: int) -> Any:
    """The real client, whose first `failures` transactions are cancelled by a
    concurrent one (what DynamoDB does under contention; moto never does)."""
    real = client.transact_write_items
    left = {"n": failures}

    def transact_write_items(**kwargs: Any) -> Any:
        if left["n"] > 0:
            left["n"] -= 1
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [
                        {"Code": "TransactionConflict"},
                        {"Code": "None"},
                        {"Code": "None"},
                    ],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    client.transact_write_items = transact_write_items
    return client


def test_a_transaction_conflict_is_retried_and_then_claims_once(
    client: Any, orders_table: str, lines: DynamoLineRepository, orders: DynamoOrderRepository
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)

    response = run(event, make_service(conflicting(client, 2), orders_table))

    assert response == {"batchItemFailures": []}
    assert order(orders).status.value == "MATCHED"
    assert_counters_match_orders(client, orders_table, lines)


def test_lasting_contention_fails_the_record_for_redelivery_and_writes_nothing(
    client: Any, orders_table: str, lines: DynamoLineRepository, orders: DynamoOrderRepository
) -> None:
    lines.put_config("bank-a-consumer", line_config(), NOW)
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)

    # A batch whose every record failed is raised, so Lambda retries and bisects it.
    with pytest.raises(BatchProcessingError):
        run(event, make_service(conflicting(client, 99), orders_table, attempts=3))

    assert order(orders).status.value == "RECEIVED"
    assert_counters_match_orders(client, orders_table, lines)


def test_a_warm_matcher_matches_an_order_only_a_line_created_since_makes_eligible(
    client: Any,
    orders_table: str,
    lines: DynamoLineRepository,
    orders: DynamoOrderRepository,
) -> None:
    lines.put_config("tiny", line_config(maxAmount=100_000), NOW)
    catalog = LineCatalog(lines)
    catalog.lines()  # a warm container, within its TTL
    service = MatchService(catalog, DynamoMatchStore(client, orders_table, lines), lambda: NOW)
    lines.put_config("bank-a-consumer", line_config(), NOW)  # the operator's change
    event = load_event("matcher/new_order.json")
    stored_from(event, client, orders_table)
    requests = Requests(client)

    assert run(event, service) == {"batchItemFailures": []}

    # The policy; the cached ranking refused every line, so the marker, which showed
    # the change; the lines (keys, then items) and the policy again; the claim.
    assert requests.names == [
        "GetItem",
        "GetItem",
        "Query",
        "BatchGetItem",
        "GetItem",
        "TransactWriteItems",
    ]
    assert order(orders).line_id == "bank-a-consumer"


def test_every_line_and_routing_write_bumps_the_marker_naming_recent_lines(
    lines: DynamoLineRepository,
) -> None:
    assert lines.catalog_marker().version == 0
    for index in range(40):
        lines.put_config(f"line-{index:02d}", line_config(), NOW)
    lines.put_config("line-39", line_config(priority=1), NOW)
    lines.put_routing("tenant-a", RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=[]), NOW)

    marker = lines.catalog_marker()

    assert marker.version == 42
    assert len(marker.recent) == 32  # bounded: the item never grows with the lines
    assert marker.recent["line-39"] == 2
    assert "line-00" not in marker.recent
