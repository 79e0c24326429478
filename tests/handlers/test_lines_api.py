"""The admin routes for lending lines and routing, driven by events/api on moto.
Refusals are checked to leave the Lines table exactly as it was."""

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from fundrouter.domain.lifecycle import EventType
from fundrouter.domain.lines import LineRecord
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.lines import LineService
from fundrouter.service.orders import OrderService
from fundrouter.service.ports import ClaimResult

from tests.support.api import serve
from tests.support.aws import FakeLambdaContext, scan_all
from tests.support.events import event_names, load_event
from tests.support.handlers import handler_module
from tests.support.orders import Paths
from tests.support.requests import Requests
from tests.support.template import create_table_kwargs

api = handler_module("api", "api_handler")
NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # already 25 November in Shanghai
LINES_TABLE = "fundrouter-test-lines"


@pytest.fixture
def lines_table(aws: None) -> str:
    boto3.client("dynamodb").create_table(**create_table_kwargs("LinesTable", LINES_TABLE))
    return LINES_TABLE


@pytest.fixture
def repository(lines_table: str) -> DynamoLineRepository:
    return DynamoLineRepository(boto3.client("dynamodb"), lines_table)


@pytest.fixture
def services(orders_table: str, repository: DynamoLineRepository) -> tuple[Any, ...]:
    orders = OrderService(
        DynamoOrderRepository(boto3.client("dynamodb"), orders_table), lambda: NOW
    )
    return orders, LineService(repository, lambda: NOW)


@pytest.fixture
def paths(orders_table: str, repository: DynamoLineRepository) -> Paths:
    """Orders claimed and moved on the lines as the matcher and the events do."""
    return Paths(boto3.client("dynamodb"), orders_table, repository)


def call(
    event: dict[str, Any] | str, services: tuple[Any, ...], context: FakeLambdaContext
) -> tuple[int, Any]:
    if isinstance(event, str):
        event = load_event(f"api/{event}.json")
    response = serve(event, context, **dict(zip(("orders", "lines"), services, strict=True)))
    return response["statusCode"], json.loads(response["body"])


def table_items() -> list[dict[str, Any]]:
    return sorted(
        scan_all(boto3.client("dynamodb"), LINES_TABLE), key=lambda i: (i["pk"]["S"], i["sk"]["S"])
    )


LINE_EVENTS = {
    "put_line",
    "put_line_invalid",
    "put_line_by_tenant",
    "patch_line_pause",
    "patch_line_lower_limit",
    "patch_line_invalid",
    "patch_line_unknown",
    "get_line",
    "get_line_unknown",
    "list_lines",
    "list_lines_by_tenant",
    "put_routing",
    "put_routing_unknown_line",
    "put_routing_invalid",
    "get_routing",
}


def test_every_admin_sample_event_is_covered() -> None:
    own = ("put_line", "patch_line", "get_line", "list_lines", "put_routing", "get_routing")
    assert {n for n in event_names("api") if n.startswith(own)} == LINE_EVENTS


def test_admin_creates_a_line_with_empty_counters(
    services: tuple[Any, ...], lambda_context: FakeLambdaContext
) -> None:
    status, line = call("put_line", services, lambda_context)

    assert status == 201
    assert line["lineId"] == "bank-a-consumer"
    assert line["limit"] == 500000000
    assert (line["reserved"], line["drawn"], line["available"]) == (0, 0, 500000000)
    assert line["usedToday"] == 0
    assert line["day"] == "2026-11-25"
    assert line["timezone"] == "Asia/Shanghai"
    assert line["configVersion"] == 1
    assert line["warnings"] == []


def test_replacing_the_configuration_never_touches_the_counters(
    services: tuple[Any, ...],
    repository: DynamoLineRepository,
    paths: Paths,
    lambda_context: FakeLambdaContext,
) -> None:
    call("put_line", services, lambda_context)
    record = repository.get("bank-a-consumer")
    assert isinstance(record, LineRecord)
    paths.claimed(record, 2_000_000, NOW)

    status, line = call("put_line", services, lambda_context)

    assert status == 200
    assert line["configVersion"] == 2
    assert (line["reserved"], line["usedToday"]) == (2_000_000, 2_000_000)
    assert line["available"] == 500000000 - 2_000_000


def test_lowering_the_limit_below_what_is_held_is_accepted_and_reported(
    services: tuple[Any, ...],
    repository: DynamoLineRepository,
    paths: Paths,
    lambda_context: FakeLambdaContext,
) -> None:
    call("put_line", services, lambda_context)
    record = repository.get("bank-a-consumer")
    assert record is not None
    paths.claimed(record, 3_000_000, NOW)

    status, line = call("patch_line_lower_limit", services, lambda_context)  # limit 1,000,000

    assert status == 200
    assert line["limit"] == 1_000_000
    assert line["available"] == -2_000_000
    assert [w["code"] for w in line["warnings"]] == ["limit_below_held"]
    lowered = repository.get("bank-a-consumer")
    assert lowered is not None
    refused, _ = paths.claim(lowered, 10_000, NOW)
    assert refused.result is ClaimResult.LINE_REFUSED
    assert refused.refusal is not None
    assert "insufficient capacity" in refused.refusal.message


def test_pausing_keeps_every_other_setting(
    services: tuple[Any, ...], lambda_context: FakeLambdaContext
) -> None:
    _, before = call("put_line", services, lambda_context)

    status, paused = call("patch_line_pause", services, lambda_context)

    assert status == 200
    assert paused["status"] == "PAUSED"
    unchanged = {
        k: v for k, v in before.items() if k not in {"status", "configVersion", "updatedAt"}
    }
    assert {k: paused[k] for k in unchanged} == unchanged


@pytest.mark.parametrize(
    ("name", "status", "fields"),
    [
        (
            "put_line_invalid",
            422,
            {"currency", "limit", "maxAmount", "weight", "timezone"},
        ),
        ("patch_line_invalid", 422, {"maxAmount", "colour"}),
        ("patch_line_unknown", 404, set()),
        ("get_line_unknown", 404, set()),
        ("put_line_by_tenant", 403, set()),
        ("list_lines_by_tenant", 403, set()),
        ("put_routing_unknown_line", 422, {"lineIds.1"}),
        ("put_routing_invalid", 422, {"strategy"}),
    ],
)
def test_bad_admin_requests_are_refused_and_change_nothing(
    name: str,
    status: int,
    fields: set[str],
    services: tuple[Any, ...],
    lambda_context: FakeLambdaContext,
) -> None:
    call("put_line", services, lambda_context)
    before = table_items()

    answer, body = call(name, services, lambda_context)

    assert answer == status
    assert {f["field"] for f in body["error"]["fields"]} == fields
    assert table_items() == before


def test_listing_shows_every_line_with_todays_usage(
    services: tuple[Any, ...],
    repository: DynamoLineRepository,
    paths: Paths,
    lambda_context: FakeLambdaContext,
) -> None:
    call("put_line", services, lambda_context)
    second = load_event("api/put_line.json")
    second["pathParameters"]["lineId"] = "trust-b"
    second["rawPath"] = second["requestContext"]["http"]["path"] = "/v1/lines/trust-b"
    call(second, services, lambda_context)
    record = repository.get("trust-b")
    assert record is not None
    paths.claimed(record, 40_000, NOW)

    status, page = call("list_lines", services, lambda_context)

    assert status == 200
    assert [(line["lineId"], line["usedToday"]) for line in page["items"]] == [
        ("bank-a-consumer", 0),
        ("trust-b", 40_000),
    ]


def test_routing_policy_round_trips_and_defaults_to_priority(
    services: tuple[Any, ...], lambda_context: FakeLambdaContext
) -> None:
    call("put_line", services, lambda_context)
    _, default = call("get_routing", services, lambda_context)

    status, stored = call("put_routing", services, lambda_context)
    _, read = call("get_routing", services, lambda_context)

    assert default["strategy"] == "PRIORITY"
    assert default["lineIds"] == []
    assert status == 200
    assert read == stored
    assert read["strategy"] == "LOWEST_COST"
    assert read["lineIds"] == ["bank-a-consumer"]


def test_reading_a_line_shows_its_utilization(
    services: tuple[Any, ...],
    repository: DynamoLineRepository,
    paths: Paths,
    lambda_context: FakeLambdaContext,
) -> None:
    call("put_line", services, lambda_context)
    record = repository.get("bank-a-consumer")
    assert record is not None
    paths.event(paths.claimed(record, 1_000_000, NOW), EventType.DISBURSED, NOW, 600_000)

    status, line = call("get_line", services, lambda_context)

    assert status == 200
    assert (line["reserved"], line["drawn"]) == (0, 600_000)
    assert line["available"] == 500000000 - 600_000
    # The undrawn 400,000 went back to the claim day's usage as well.
    assert line["usedToday"] == 600_000
    assert line["availableToday"] == 50000000 - 600_000
    assert line["orders"] == {"MATCHED": 0, "APPROVED": 0, "DISBURSED": 1}


def test_line_views_read_no_orders_however_many_the_line_holds(
    services: tuple[Any, ...],
    repository: DynamoLineRepository,
    paths: Paths,
    orders_table: str,
    lambda_context: FakeLambdaContext,
) -> None:
    """The line item counts its orders by status: listing the lines is one Query of
    the lines index and one BatchGetItem of the days, reading a line one
    BatchGetItem, and a configuration write answers from what it wrote."""
    call("put_line", services, lambda_context)
    record = repository.get("bank-a-consumer")
    assert record is not None
    held = [paths.claimed(record, 10_000, NOW) for _ in range(30)]
    for order in held[:10]:
        paths.event(order, EventType.APPROVED, NOW)
    for order in held[10:25]:
        paths.event(order, EventType.DISBURSED, NOW, 10_000)
    requests = Requests(repository.client)

    views = [call(name, services, lambda_context) for name in ("list_lines", "get_line")]
    views += [call(name, services, lambda_context) for name in ("put_line", "patch_line_pause")]

    counts = {"MATCHED": 5, "APPROVED": 10, "DISBURSED": 15}
    assert [status for status, _ in views] == [200, 200, 200, 200]
    assert views[0][1]["items"][0]["orders"] == counts
    assert all(body["orders"] == counts for _, body in views[1:])
    assert all(tables == {LINES_TABLE} for tables in requests.tables), requests.tables
    marker = ["GetItem", "PutItem"]  # the change marker every configuration write bumps
    assert requests.names == [
        # The keys-only lines index, the line items, their days' usage.
        *["Query", "BatchGetItem", "BatchGetItem"],
        "BatchGetItem",
        *["UpdateItem", *marker, "BatchGetItem"],
        *["BatchGetItem", "UpdateItem", *marker, "BatchGetItem"],
    ]
