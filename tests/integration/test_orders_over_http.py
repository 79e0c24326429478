"""Order intake over real HTTP, through the JWT authorizer, on the local stack
deployed from template.yaml, with tokens from the Cognito token endpoint."""

import uuid
from typing import Any

import pytest

from tests.support.factories import order_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

WRITE_READ = "fundrouter/orders.write fundrouter/orders.read"


def new_order(**changes: Any) -> dict[str, Any]:
    return order_body(orderId=f"shop-{uuid.uuid4().hex[:12]}") | changes


@pytest.fixture(scope="module")
def token(local_stack: LocalStack) -> str:
    return local_stack.token("TENANT", WRITE_READ)


def stored_order_ids(stack: LocalStack) -> set[str]:
    """Straight from the table, not through the API under test."""
    client = stack.client("dynamodb")
    pages = client.get_paginator("scan").paginate(
        TableName=stack.settings["FUNDROUTER_ORDERS_TABLE"],
        FilterExpression="sk = :order",
        ExpressionAttributeValues={":order": {"S": "ORDER"}},
    )
    return {item["orderId"]["S"] for page in pages for item in page["Items"]}


def test_order_lifecycle_of_intake_create_read_repeat_conflict(
    local_stack: LocalStack, token: str
) -> None:
    order = new_order()

    created = local_stack.call("POST", "/v1/orders", token, order)
    read = local_stack.call("GET", f"/v1/orders/{order['orderId']}", token)
    repeated = local_stack.call("POST", "/v1/orders", token, order)
    changed = local_stack.call("POST", "/v1/orders", token, order | {"amount": 990000})

    assert created.status == 202
    assert created.body["status"] == "RECEIVED"
    assert created.body["tenantId"] == local_stack.client_id
    # The deployed matcher may decide the order at any moment: what intake stored
    # stays the same whatever its status has become.
    stable = ("orderId", "tenantId", "amount", "currency", "customer", "metadata", "createdAt")
    assert read.status == 200
    assert {k: read.body[k] for k in stable} == {k: created.body[k] for k in stable}
    assert repeated.status == 200
    assert {k: repeated.body[k] for k in stable} == {k: created.body[k] for k in stable}
    assert changed.status == 409
    assert changed.body["error"]["code"] == "order_conflict"
    assert (
        local_stack.call("GET", f"/v1/orders/{order['orderId']}", token).body["amount"] == 1250000
    )


def test_requests_without_a_valid_token_are_refused_at_the_gateway(
    local_stack: LocalStack,
) -> None:
    order = new_order()

    assert local_stack.call("POST", "/v1/orders", None, order).status == 401
    assert local_stack.call("POST", "/v1/orders", "not.a.jwt", order).status == 401
    assert order["orderId"] not in stored_order_ids(local_stack)


def test_a_token_without_the_scope_is_forbidden(local_stack: LocalStack) -> None:
    read_only = local_stack.token("TENANT", "fundrouter/orders.read")
    order = new_order()

    assert local_stack.call("POST", "/v1/orders", read_only, order).status == 403
    assert order["orderId"] not in stored_order_ids(local_stack)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"orderId": "x", "amount": ', 400, "body"),
        ({"amount": -1}, 422, "amount"),
        ({"currency": "XYZ"}, 422, "currency"),
        ({"amount": 12.5}, 422, "amount"),
        ({"tenantId": "someone-else"}, 422, "tenantId"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    local_stack: LocalStack, token: str, body: Any, status: int, field: str
) -> None:
    order = new_order() | body if isinstance(body, dict) else body
    before = stored_order_ids(local_stack)

    answer = local_stack.call("POST", "/v1/orders", token, order)

    assert answer.status == status
    assert field in {f["field"] for f in answer.body["error"]["fields"]}
    assert stored_order_ids(local_stack) == before


def test_listing_is_newest_first_and_admin_reads_any_tenant(
    local_stack: LocalStack, token: str
) -> None:
    ids = []
    for _ in range(3):
        order = new_order()
        assert local_stack.call("POST", "/v1/orders", token, order).status == 202
        ids.append(order["orderId"])
    admin = local_stack.token("ADMIN", "fundrouter/lines.admin")

    page = local_stack.call("GET", "/v1/orders?limit=3", token)
    by_admin = local_stack.call(
        "GET", f"/v1/orders/{ids[0]}?tenantId={local_stack.client_id}", admin
    )
    admin_cannot_write = local_stack.call("POST", "/v1/orders", admin, new_order())

    assert page.status == 200
    assert [o["orderId"] for o in page.body["items"]] == list(reversed(ids))
    assert page.body["nextCursor"]
    assert by_admin.status == 200
    assert by_admin.body["orderId"] == ids[0]
    assert admin_cannot_write.status == 403
