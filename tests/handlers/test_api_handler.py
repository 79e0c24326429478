"""The ApiFunction driven by the sample events in events/api on moto's DynamoDB,
whose table is built from template.yaml. Every refusal is checked to write nothing by
scanning the table afterwards."""

import base64
import json
from typing import Any

import boto3
import pytest
from fundrouter import bootstrap
from fundrouter.domain.orders import OrderStatus
from fundrouter.http.app import build_app
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.service.orders import OrderService
from fundrouter.settings import MissingSetting

from tests.support.api import built_from_environment, serve
from tests.support.aws import FakeLambdaContext, scan_all
from tests.support.events import event_names, load_event
from tests.support.fakes import ticking
from tests.support.handlers import handler_module

api = handler_module("api", "api_handler")
TENANT = load_event("api/submit_order.json")["requestContext"]["authorizer"]["jwt"]["claims"][
    "client_id"
]


@pytest.fixture
def service(orders_table: str) -> OrderService:
    repository = DynamoOrderRepository(boto3.client("dynamodb"), orders_table)
    return OrderService(repository, ticking())


def call(
    event: dict[str, Any] | str, service: OrderService, context: FakeLambdaContext
) -> tuple[int, Any]:
    if isinstance(event, str):
        event = load_event(f"api/{event}.json")
    response = serve(event, context, orders=service)
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def submit_body(**changes: Any) -> dict[str, Any]:
    event = load_event("api/submit_order.json")
    event["body"] = json.dumps(json.loads(event["body"]) | changes)
    return event


# ------------------------------------------------------------------ refusals write nothing

REFUSED = {
    "submit_order_invalid_fields": (
        422,
        {"orderId", "amount", "currency", "termMonths", "customer.id", "colour"},
    ),
    "submit_order_negative_amount": (422, {"amount"}),
    "submit_order_amount_as_string": (422, {"amount"}),
    "submit_order_malformed_json": (400, {"body"}),
    "submit_order_form_encoded": (415, {"content-type"}),
    "submit_order_oversized_metadata": (422, {"metadata"}),
    "submit_order_without_token": (401, set()),
    "submit_order_read_only_scope": (403, set()),
    "get_order_unknown": (404, set()),
    "get_order_write_only_scope": (403, set()),
    "list_orders_bad_limit": (422, {"limit"}),
    "list_orders_unknown_status": (422, {"status"}),
    "list_orders_forged_cursor": (422, {"cursor"}),
    "list_orders_tenant_naming_other_tenant": (403, set()),
}


def test_every_sample_event_is_covered_by_a_test() -> None:
    covered = set(REFUSED) | {
        "submit_order",
        "submit_order_changed_amount",
        "get_order",
        "get_order_by_admin",
        "get_order_other_tenant",
        "list_orders",
        "list_orders_by_status",
    }
    own = ("submit_order", "get_order", "list_orders")
    assert {name for name in event_names("api") if name.startswith(own)} == covered


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_request_gets_a_clear_error_and_writes_nothing(
    name: str, service: OrderService, orders_table: str, lambda_context: FakeLambdaContext
) -> None:
    expected_status, expected_fields = REFUSED[name]

    status, body = call(name, service, lambda_context)

    assert status == expected_status
    assert set(body) == {"error"}
    assert body["error"]["code"]
    assert body["error"]["message"]
    assert {f["field"] for f in body["error"]["fields"]} == expected_fields
    assert all(f["reason"] for f in body["error"]["fields"])
    assert scan_all(boto3.client("dynamodb"), orders_table) == []


def test_validation_reasons_say_what_is_wrong(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    _, body = call("submit_order_invalid_fields", service, lambda_context)

    reasons = {f["field"]: f["reason"] for f in body["error"]["fields"]}
    assert reasons["currency"] == "not an ISO 4217 currency code"
    assert reasons["colour"] == "unknown field"
    assert "integer" in reasons["amount"]
    assert "greater than or equal to 1" in reasons["termMonths"]


# ------------------------------------------------------------------ intake


def test_new_order_is_accepted_as_received(
    service: OrderService, orders_table: str, lambda_context: FakeLambdaContext
) -> None:
    status, order = call("submit_order", service, lambda_context)

    assert status == 202
    assert order["status"] == "RECEIVED"
    assert order["tenantId"] == TENANT
    assert order["amount"] == 1250000
    assert order["currency"] == "CNY"
    assert order["customer"] == {"id": "c-829", "region": "GD", "creditGrade": "B"}
    assert order["metadata"] == {"channel": "app"}
    assert order["version"] == 1
    assert order["history"][0]["status"] == "RECEIVED"
    assert order["createdAt"] == "2026-11-24T10:00:00.000Z"
    assert "contentHash" not in order
    assert len(scan_all(boto3.client("dynamodb"), orders_table)) == 1


def test_same_order_again_returns_the_stored_order(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    _, first = call("submit_order", service, lambda_context)

    status, again = call("submit_order", service, lambda_context)

    assert status == 200
    assert again == first


def test_same_id_with_different_content_is_a_conflict_and_keeps_the_original(
    service: OrderService, orders_table: str, lambda_context: FakeLambdaContext
) -> None:
    call("submit_order", service, lambda_context)

    status, body = call("submit_order_changed_amount", service, lambda_context)
    _, stored = call("get_order", service, lambda_context)

    assert status == 409
    assert body["error"]["code"] == "order_conflict"
    assert stored["amount"] == 1250000
    assert len(scan_all(boto3.client("dynamodb"), orders_table)) == 1


def test_key_order_and_spacing_of_the_body_do_not_make_a_different_order(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    call("submit_order", service, lambda_context)
    event = load_event("api/submit_order.json")
    reordered = dict(reversed(list(json.loads(event["body"]).items())))
    event["body"] = json.dumps(reordered, indent=4)

    status, _ = call(event, service, lambda_context)

    assert status == 200


def test_two_tenants_may_use_the_same_order_id(
    service: OrderService, orders_table: str, lambda_context: FakeLambdaContext
) -> None:
    other = load_event("api/submit_order.json")
    other["requestContext"]["authorizer"]["jwt"]["claims"]["client_id"] = "anothertenant"

    assert call("submit_order", service, lambda_context)[0] == 202
    assert call(other, service, lambda_context)[0] == 202
    assert len(scan_all(boto3.client("dynamodb"), orders_table)) == 2


def test_tenant_in_the_body_is_refused_not_trusted(
    service: OrderService, orders_table: str, lambda_context: FakeLambdaContext
) -> None:
    status, body = call(submit_body(tenantId="someone-else"), service, lambda_context)

    assert status == 422
    assert body["error"]["fields"] == [{"field": "tenantId", "reason": "unknown field"}]
    assert scan_all(boto3.client("dynamodb"), orders_table) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 10**12 + 1}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "cny"}, "currency"),
        ({"orderId": "x" * 65}, "orderId"),
        ({"termMonths": 481}, "termMonths"),
        ({"metadata": {"k": "v" * 257}}, "metadata.k"),
        ({"customer": {"id": "c-1", "region": "G D"}}, "customer.region"),
    ],
)
def test_out_of_bounds_values_are_refused(
    changes: dict[str, Any],
    field: str,
    service: OrderService,
    orders_table: str,
    lambda_context: FakeLambdaContext,
) -> None:
    status, body = call(submit_body(**changes), service, lambda_context)

    assert status == 422
    assert [f["field"] for f in body["error"]["fields"]] == [field]
    assert scan_all(boto3.client("dynamodb"), orders_table) == []


def test_a_new_order_costs_exactly_one_dynamodb_request(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    requests: list[str] = []
    client = service._repository._client  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: requests.append(model.name)
    )

    status, _ = call("submit_order", service, lambda_context)

    assert status == 202
    assert requests == ["PutItem"]


# ------------------------------------------------------------------ reads


def test_order_is_read_back_by_its_tenant(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    _, created = call("submit_order", service, lambda_context)

    status, read = call("get_order", service, lambda_context)

    assert status == 200
    assert read == created


def test_another_tenant_cannot_see_that_the_order_exists(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    call("submit_order", service, lambda_context)

    status, body = call("get_order_other_tenant", service, lambda_context)

    assert status == 404
    assert body["error"]["code"] == "order_not_found"


def test_admin_reads_any_tenants_order_by_naming_the_tenant(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    call("submit_order", service, lambda_context)

    status, order = call("get_order_by_admin", service, lambda_context)

    assert status == 200
    assert order["tenantId"] == TENANT


def test_listing_walks_every_order_newest_first_with_the_cursor(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    for number in range(5):
        assert call(submit_body(orderId=f"shop-{number}"), service, lambda_context)[0] == 202
    event = load_event("api/list_orders.json")  # limit=2

    seen: list[str] = []
    pages = 0
    while True:
        status, page = call(event, service, lambda_context)
        assert status == 200
        pages += 1
        seen += [order["orderId"] for order in page["items"]]
        if page["nextCursor"] is None:
            break
        event = load_event("api/list_orders.json")
        event["queryStringParameters"]["cursor"] = page["nextCursor"]

    assert seen == [f"shop-{n}" for n in reversed(range(5))]
    assert pages == 3


def test_listing_filters_by_status(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    call("submit_order", service, lambda_context)

    status, page = call("list_orders_by_status", service, lambda_context)
    matched = load_event("api/list_orders_by_status.json")
    matched["queryStringParameters"]["status"] = OrderStatus.MATCHED.value
    _, none = call(matched, service, lambda_context)

    assert status == 200
    assert [o["orderId"] for o in page["items"]] == ["shop-20261124-0001"]
    assert none == {"items": [], "nextCursor": None}


def test_a_cursor_cannot_be_replayed_by_another_tenant(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    for number in range(3):
        call(submit_body(orderId=f"shop-{number}"), service, lambda_context)
    _, page = call("list_orders", service, lambda_context)
    thief = load_event("api/list_orders.json")
    thief["requestContext"]["authorizer"]["jwt"]["claims"]["client_id"] = "anothertenant"
    thief["queryStringParameters"]["cursor"] = page["nextCursor"]

    status, body = call(thief, service, lambda_context)

    assert status == 422
    assert body["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("cursor", ["%%%", base64.urlsafe_b64encode(b"[1,2]").decode(), "e30"])
def test_garbage_cursor_is_refused(
    cursor: str, service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("api/list_orders.json")
    event["queryStringParameters"]["cursor"] = cursor

    status, body = call(event, service, lambda_context)

    assert status == 422
    assert body["error"]["fields"][0]["field"] == "cursor"


def test_unknown_route_is_a_404_in_the_error_shape(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("api/list_orders.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/nothing"

    status, body = call(event, service, lambda_context)

    assert status == 404
    assert body["error"]["code"] == "route_not_found"


def test_a_bug_is_a_500_that_does_not_leak_its_message(
    lambda_context: FakeLambdaContext,
) -> None:
    class ExplodingRepository:
        def add(self, order: object) -> None:
            raise RuntimeError("secret connection string")

    service = OrderService(ExplodingRepository(), ticking())  # type: ignore[arg-type]

    status, body = call("submit_order", service, lambda_context)

    assert status == 500
    assert "secret" not in json.dumps(body)
    assert body["error"]["code"] == "internal_error"


# ------------------------------------------------------------------ the Lambda entry point


def test_lambda_entry_point_serves_a_request_with_settings_from_the_environment(
    orders_table: str,
    tenants_table: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("ORDERS_TABLE_NAME", orders_table)
    monkeypatch.setenv("TENANTS_TABLE_NAME", tenants_table)
    monkeypatch.setenv("USER_POOL_ID", "us-east-1_test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("LINES_TABLE_NAME", "fundrouter-test-lines")
    monkeypatch.setenv("EVENT_BUS_NAME", "fundrouter-test-orders")
    monkeypatch.setenv("UNPUBLISHED_EVENTS_QUEUE_URL", "https://sqs.ap-east-1.amazonaws.com/1/q")
    with built_from_environment():
        response = api.handler(load_event("api/submit_order.json"), lambda_context)

    assert response["statusCode"] == 202
    assert len(scan_all(boto3.client("dynamodb"), orders_table)) == 1


def test_a_missing_setting_fails_loudly_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERS_TABLE_NAME", raising=False)
    with built_from_environment(), pytest.raises(MissingSetting, match="ORDERS_TABLE_NAME"):
        bootstrap.order_service()


def test_building_another_resolver_leaves_the_handlers_routes_working(
    service: OrderService, lambda_context: FakeLambdaContext
) -> None:
    """Routers are made per resolver: the OpenAPI script and the template tests build
    their own resolver in the same process as the handler."""
    build_app()

    status, _ = call("submit_order", service, lambda_context)

    assert status == 202
