"""What an outside client can send that no sample is: bodies that are not JSON objects,
other media types, undeclared methods, forged cursors, and failures on the server's
side that are not the caller's fault. Every refusal is checked to write nothing by
comparing both moto tables before and after."""

import base64
import json
from typing import Any

import pytest
from fundrouter.domain.errors import OrderNotFound
from fundrouter.http.app import build_app
from fundrouter.http.auth import ROUTE_SCOPES, Scope
from fundrouter.persistence.orders import order_pk
from fundrouter.service.orders import OrderService

from tests.support.api import serve
from tests.support.aws import FakeLambdaContext
from tests.support.events import load_event
from tests.support.template import ROOT
from tests.support.world import TENANT, World

# Every route that takes a body, with the sample that calls it.
BODY_ROUTES = [
    "submit_order",
    "order_event_approved",
    "put_line",
    "patch_line_pause",
    "put_routing",
]


@pytest.fixture
def world(orders_table: str) -> World:
    """A MATCHED order on bank-a-consumer, so an event body could move it."""
    world = World(orders_table)
    world.matched_order()
    return world


def with_body(name: str, body: str, content_type: str = "application/json") -> dict[str, Any]:
    event = load_event(f"api/{name}.json")
    event["body"] = body
    event["headers"]["content-type"] = content_type
    return event


def refused(world: World, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    before = world.everything()
    status, body = world.call(event)
    assert world.everything() == before
    assert set(body) == {"error"}
    return status, body["error"]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("shape", ["array", "string", "number", "null", "true"])
def test_a_body_that_is_not_a_json_object_is_422_and_writes_nothing(
    world: World, route: str, shape: str
) -> None:
    valid = load_event(f"api/{route}.json")["body"]
    body = {"array": f"[{valid}]", "string": '"x"', "number": "42", "null": "null"}.get(
        shape, shape
    )

    status, error = refused(world, with_body(route, body))

    assert status == 422
    assert error["code"] == "validation_failed"
    assert [f["field"] for f in error["fields"]] == ["body"]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/jsonx"],
)
def test_a_json_body_sent_as_another_media_type_is_415(
    world: World, route: str, content_type: str
) -> None:
    valid = load_event(f"api/{route}.json")["body"]

    status, error = refused(world, with_body(route, valid, content_type))

    assert (status, error["code"]) == (415, "unsupported_media_type")
    assert [f["field"] for f in error["fields"]] == ["content-type"]


def test_json_with_a_charset_is_json(world: World) -> None:
    event = with_body(
        "put_line", load_event("api/put_line.json")["body"], "Application/JSON; charset=utf-8"
    )

    assert world.call(event)[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/v1/lines", "GET"),
        ("DELETE", "/v1/orders", "GET, POST"),
        ("DELETE", "/v1/orders/shop-1", "GET"),
        ("GET", "/v1/orders/shop-1/events", "POST"),
        ("POST", "/v1/lines/bank-a-consumer", "GET, PATCH, PUT"),
        ("PATCH", "/v1/tenants/t-1/routing", "GET, PUT"),
    ],
)
def test_an_undeclared_method_is_405_with_allow(
    world: World, method: str, path: str, allow: str
) -> None:
    event = load_event("api/list_lines.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    before = world.everything()

    response = serve(event, **world.api_services)

    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == allow
    assert json.loads(response["body"])["error"]["code"] == "method_not_allowed"
    assert world.everything() == before


# ------------------------------------------------------------------ cursors


def cursor(**key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


MINE = "2026-11-24T10:00:01.000Z#shop-20261124-0001"
FORGED = {
    "no sort key": cursor(gsi1pk=f"T#{TENANT}", pk=order_pk(TENANT, "a"), sk="ORDER"),
    "sort key a number": cursor(
        gsi1pk=f"T#{TENANT}", gsi1sk=7, pk=order_pk(TENANT, "a"), sk="ORDER"
    ),
    "empty sort key": cursor(gsi1pk=f"T#{TENANT}", gsi1sk="", pk=order_pk(TENANT, "a"), sk="ORDER"),
    "another tenant's order": cursor(
        gsi1pk=f"T#{TENANT}", gsi1sk=MINE, pk=order_pk("other", "shop-20261124-0001"), sk="ORDER"
    ),
    "sort key of another order": cursor(
        gsi1pk=f"T#{TENANT}", gsi1sk=MINE, pk=order_pk(TENANT, "b"), sk="ORDER"
    ),
    "another index": cursor(
        gsi2pk=f"T#{TENANT}#S#MATCHED", gsi2sk=MINE, pk=order_pk(TENANT, "b"), sk="ORDER"
    ),
    "an extra attribute": cursor(
        gsi1pk=f"T#{TENANT}",
        gsi1sk=MINE,
        pk=order_pk(TENANT, "shop-20261124-0001"),
        sk="ORDER",
        dueAt="x",
    ),
    "oversized sort key": cursor(
        gsi1pk=f"T#{TENANT}", gsi1sk="9" * 1100, pk=order_pk(TENANT, "a"), sk="ORDER"
    ),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_forged_cursor_is_422_invalid_cursor(world: World, name: str) -> None:
    event = load_event("api/list_orders.json")
    event["queryStringParameters"]["cursor"] = FORGED[name]

    status, error = refused(world, event)

    assert (status, error["code"]) == (422, "invalid_cursor")


def test_a_cursor_of_the_callers_own_listing_still_pages(world: World) -> None:
    event = load_event("api/list_orders.json")
    event["queryStringParameters"]["cursor"] = cursor(
        gsi1pk=f"T#{TENANT}",
        gsi1sk="2026-11-24T10:00:00.000Z#shop-20261124-0001",
        pk=order_pk(TENANT, "shop-20261124-0001"),
        sk="ORDER",
    )

    status, page = world.call(event)

    assert (status, page["items"]) == (200, [])


# ------------------------------------------------------------------ the server's own failures


def test_a_stored_item_that_fails_to_decode_is_a_500_and_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.client.update_item(
        TableName=world.orders_table,
        Key={"pk": {"S": order_pk(TENANT, "shop-20261124-0001")}, "sk": {"S": "ORDER"}},
        UpdateExpression="SET amount = :bad",
        ExpressionAttributeValues={":bad": {"S": "a lot"}},
    )

    status, body = world.call("get_order")

    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "a lot" not in json.dumps(body)
    assert "unhandled error" in caplog.text


def test_a_patch_whose_merge_fails_validation_is_the_callers_422(world: World) -> None:
    event = with_body("patch_line_pause", json.dumps({"minAmount": 9_000_000}))

    status, error = refused(world, event)

    assert (status, error["code"]) == (422, "validation_failed")
    assert error["fields"]


def test_a_subclass_of_a_domain_error_answers_with_its_bases_status(
    lambda_context: FakeLambdaContext,
) -> None:
    class Archived(OrderNotFound):
        code = "order_archived"

    class ArchivingRepository:
        def get(self, tenant_id: str, order_id: str) -> None:
            raise Archived(order_id)

    service = OrderService(ArchivingRepository(), lambda: None)  # type: ignore[arg-type,return-value]
    build_app()  # a second resolver in the process changes nothing

    response = serve(load_event("api/get_order.json"), lambda_context, orders=service)

    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "order_archived"


def test_a_line_active_from_before_the_year_1000_is_stored_and_read_back(world: World) -> None:
    config = json.loads(load_event("api/put_line.json")["body"])
    config["activeFrom"] = "0657-08-04T18:45:01.562750+02:28"
    put = world.call(with_body("put_line", json.dumps(config)))

    status, lines = world.call("list_lines")

    assert put[0] == 200
    assert status == 200
    assert {line["activeFrom"] for line in lines["items"]} >= {"0657-08-04T16:17:01.562Z"}


@pytest.mark.parametrize(
    "moment", [0, 1_700_000_000, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_a_time_that_is_a_number_or_outside_utcs_years_is_422(world: World, moment: Any) -> None:
    config = json.loads(load_event("api/put_line.json")["body"]) | {"activeFrom": moment}

    status, error = refused(world, with_body("put_line", json.dumps(config)))

    assert status == 422
    assert [f["field"] for f in error["fields"]] == ["activeFrom"]


def samples_by_route() -> dict[str, str]:
    """One sample event per route key (the first by name)."""
    samples: dict[str, str] = {}
    for path in sorted((ROOT / "events" / "api").glob("*.json")):
        samples.setdefault(json.loads(path.read_text())["routeKey"], path.stem)
    return samples


@pytest.mark.parametrize("route_key", sorted(ROUTE_SCOPES))
def test_every_route_refuses_a_token_without_its_scopes_and_writes_nothing(
    world: World, route_key: str
) -> None:
    event = load_event(f"api/{samples_by_route()[route_key]}.json")
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    claims["scope"] = " ".join(sorted(set(Scope) - set(ROUTE_SCOPES[route_key])))

    status, error = refused(world, event)

    assert (status, error["code"]) == (403, "forbidden"), error
    del claims["client_id"]
    assert refused(world, event)[0] == 401
