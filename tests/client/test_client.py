"""The typed client (clients/python): its methods against the CLI's fake API over
real HTTP on 127.0.0.1, and its tokens, retries and pages with a scripted transport."""

import json
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fundrouter_client import (
    ApiError,
    Client,
    Credentials,
    EndpointRequest,
    EventType,
    LineConfig,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    TenantRequest,
    TokenError,
    Unreachable,
)
from fundrouter_client.client import retry_after_seconds
from fundrouter_client.transport import TransportError, urllib_transport

from tests.cli.fake_api import ADMIN, TENANT, FakeApi, endpoint, order, tenant
from tests.support.factories import API_EXAMPLE, line_body, order_body
from tests.support.transport import Script, reply, token_reply

API = "http://127.0.0.1:9/api"
CREDENTIALS = Credentials("http://127.0.0.1:9/token", "tenant", "s3cret", "fundrouter/orders.read")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scripted(script: Script, **options: Any) -> tuple[Client, list[float]]:
    slept: list[float] = []
    return Client(API, CREDENTIALS, transport=script, sleep=slept.append, **options), slept


def over_http(api: FakeApi, who: tuple[str, str], **options: Any) -> Client:
    credentials = Credentials(f"{api.url}/oauth2/token", *who)
    return Client(f"{api.url}/api", credentials, **options)


def test_typed_methods_send_camel_case_and_read_typed_models(fake: FakeApi) -> None:
    tenant, admin = over_http(fake, TENANT), over_http(fake, ADMIN)
    body = order_body(orderId="o-2", metadata={"channel": "app"})

    submitted = tenant.submit_order(OrderRequest.model_validate(body))
    line = admin.put_line("l-9", LineConfig.model_validate(line_body(API_EXAMPLE)))

    assert submitted.created is True
    assert submitted.resource.status is OrderStatus.UNMATCHED
    assert submitted.resource.amount == body["amount"]  # integer minor units
    assert fake.bodies[0] == body  # camelCase, only what was set
    assert tenant.get_order("o-2").history_total == 2
    assert line.created is True
    assert line.resource.line_id == "l-9"
    assert [each.line_id for each in admin.list_lines()] == ["bank-a-consumer", "l-9"]


def test_a_write_whose_answer_was_lost_is_replayed_and_answered_as_the_same_order(
    fake: FakeApi,
) -> None:
    """The connection breaks after the order was stored: the same bytes are sent
    again, and the API's idempotency on orderId answers 200 with the stored order."""
    for transport in (urllib_transport, None):  # a new connection each time, or kept alive
        client = over_http(fake, TENANT, transport=transport, sleep=lambda _: None)
        order_id = f"o-lost-{'urllib' if transport else 'kept'}"
        fake.drop_answer = True

        written = client.submit_order(OrderRequest.model_validate(order_body(orderId=order_id)))

        posts = [b for b in fake.bodies if isinstance(b, dict) and b.get("orderId") == order_id]
        assert len(posts) == 2
        assert posts[0] == posts[1]
        assert written.created is False  # 200: the order as the first request stored it
        assert written.resource.order_id == order_id
        assert list(fake.orders).count(order_id) == 1


def test_429_and_503_are_retried_after_the_seconds_the_server_asks_for() -> None:
    busy = {"error": {"code": "service_unavailable", "message": "retry", "fields": []}}
    script = Script(
        token_reply(),
        reply(429, {"message": "Too Many Requests"}, retry_after="2"),
        reply(503, busy, retry_after="60"),
        reply(200, {"items": [], "nextCursor": None}),
    )
    client, slept = scripted(script)

    assert client.list_orders().items == []
    assert slept == [2.0, 10.0]  # as asked, at most max_retry_after
    assert client.stats == {"requests": 4, "retries": 2}


CREATIONS: dict[str, tuple[Callable[[Client], object], Any]] = {
    "webhook endpoint": (
        lambda client: client.create_webhook(
            EndpointRequest(url="https://hooks.example.com/", events=["order.status_changed"])
        ),
        {"endpoint": endpoint("we_" + "0" * 32), "secret": "whsec_1"},
    ),
    "tenant": (
        lambda client: client.create_tenant(TenantRequest(name="Shop A")),
        {"tenant": tenant("t-1"), "clientId": "t-1", "clientSecret": "s-1"},
    ),
    "tenant's new client": (
        lambda client: client.rotate_tenant_secret("t-1"),
        {"tenant": tenant("t-1"), "clientId": "c-2", "clientSecret": "s-2"},
    ),
}


@pytest.mark.parametrize("what", list(CREATIONS))
def test_a_write_that_makes_something_new_is_sent_again_only_when_it_cannot_have_been_done(
    what: str,
) -> None:
    """Throttled, busy, the API's own 503 or a refused connection: nothing was done.
    A gateway's 502 or a connection that broke after the request went out: it may
    have been, and a second would be a second endpoint, tenant or client."""
    create, answer = CREATIONS[what]
    changed = {"error": {"code": "tenant_changed", "message": "retry", "fields": []}}
    busy = {"error": {"code": "service_unavailable", "message": "wrote nothing", "fields": []}}
    script = Script(
        token_reply(), reply(429, {"message": "Too Many Requests"}), reply(409, changed),
        reply(503, busy), TransportError("connection refused", retryable=True, sent=False),
        reply(201, answer),
        reply(502, {"message": "Internal Server Error"}),
        TransportError("connection dropped (reset)", retryable=True),
    )  # fmt: skip
    client, slept = scripted(script)

    create(client)
    with pytest.raises(ApiError) as raised:
        create(client)
    with pytest.raises(Unreachable):
        create(client)

    assert raised.value.status == 502
    assert len(slept) == 4
    assert script.answers == []


def test_retry_after_may_be_an_http_date() -> None:
    assert retry_after_seconds(formatdate(1_000_030, usegmt=True), 1_000_000) == 30.0
    assert retry_after_seconds("soon", 0) is None


def test_retries_stop_after_the_last_and_the_refusal_is_raised() -> None:
    script = Script(token_reply(), *[reply(503, {"message": "busy"}, retry_after="1")] * 3)
    client, slept = scripted(script, retries=2)

    with pytest.raises(ApiError) as raised:
        client.list_orders()

    assert raised.value.status == 503
    assert slept == [1.0, 1.0]


def test_a_busy_order_is_retried_and_a_validation_error_is_not() -> None:
    busy = {"error": {"code": "order_busy", "message": "retry", "fields": []}}
    invalid = {
        "error": {
            "code": "validation_failed",
            "message": "request failed validation",
            "fields": [{"field": "amount", "reason": "must be positive"}],
        }
    }
    event = OrderEvent(event_id="e-1", type=EventType.APPROVED)
    script = Script(token_reply(), reply(409, busy), reply(200, order("o-1")), reply(422, invalid))
    client, _ = scripted(script)

    assert client.post_order_event("o-1", event).order_id == "o-1"
    with pytest.raises(ApiError) as raised:
        client.post_order_event("o-1", event)

    assert (raised.value.status, raised.value.code) == (422, "validation_failed")
    assert [(f.field, f.reason) for f in raised.value.fields] == [("amount", "must be positive")]
    assert json.loads(script.sent[1][2] or b"") == {"eventId": "e-1", "type": "APPROVED"}


def test_a_token_is_reused_until_shortly_before_it_expires_then_fetched_again() -> None:
    clock = Clock()
    page = reply(200, {"items": [], "nextCursor": None})
    script = Script(token_reply("one", 300), page, page, token_reply("two", 300), page)
    client, _ = scripted(script, clock=clock)

    client.list_orders()
    clock.now += 269  # 300 s tokens are renewed 30 s before they expire
    client.list_orders()
    clock.now += 1
    client.list_orders()

    bearers = [headers.get("authorization") for _, _, _, headers in script.sent]
    assert bearers[1:3] == ["Bearer one"] * 2
    assert bearers[4] == "Bearer two"
    form = parse_qs((script.sent[0][2] or b"").decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["fundrouter/orders.read"]}


def test_a_token_the_api_refuses_is_replaced_once() -> None:
    unauthorized = reply(401, {"message": "Unauthorized"})
    page = reply(200, {"items": [], "nextCursor": None})
    client, _ = scripted(Script(token_reply("old"), unauthorized, token_reply("new"), page))

    assert client.list_orders().next_cursor is None
    assert client.token() == "new"


def test_refused_credentials_raise_the_oauth_error() -> None:
    refused = reply(400, {"error": "invalid_client", "error_description": "Invalid."})
    client, _ = scripted(Script(refused))

    with pytest.raises(TokenError) as raised:
        client.list_orders()

    assert (raised.value.status, raised.value.error) == (400, "invalid_client")


def test_a_refused_connection_is_retried_then_unreachable() -> None:
    client, slept = scripted(Script(*[TransportError("connection refused", retryable=True)] * 3))
    client.retries = 2

    with pytest.raises(Unreachable) as raised:
        client.list_orders()

    assert (raised.value.endpoint, raised.value.reason) == ("token", "connection refused")
    assert len(slept) == 2


def test_iter_orders_follows_every_cursor_and_iter_history_too() -> None:
    pages = [
        reply(200, {"items": [order("o-3"), order("o-2")], "nextCursor": "c1"}),
        reply(200, {"items": [order("o-1")], "nextCursor": None}),
    ]
    entry = {"status": "RECEIVED", "at": "2026-11-25T00:00:00.000Z"}
    history = [
        reply(200, {"items": [entry], "nextCursor": "h1"}),
        reply(200, {"items": [entry | {"status": "MATCHED"}], "nextCursor": None}),
    ]
    script = Script(token_reply(), *pages, *history)
    client, _ = scripted(script)

    ids = [o.order_id for o in client.iter_orders(status=OrderStatus.MATCHED, page_size=2)]
    statuses = [e.status for e in client.iter_order_history("o-1", page_size=1)]

    assert ids == ["o-3", "o-2", "o-1"]
    assert statuses == [OrderStatus.RECEIVED, OrderStatus.MATCHED]
    queries = [parse_qs(urlsplit(url).query) for _, url, _, _ in script.sent[1:]]
    assert queries[0] == {"status": ["MATCHED"], "limit": ["2"]}
    assert queries[1] == {"status": ["MATCHED"], "limit": ["2"], "cursor": ["c1"]}
    assert queries[3] == {"limit": ["1"], "cursor": ["h1"]}


def test_max_pages_bounds_the_iteration() -> None:
    page = reply(200, {"items": [order("o-1")], "nextCursor": "more"})
    client, _ = scripted(Script(token_reply(), page, page))

    assert len(list(client.iter_orders(max_pages=2))) == 2


def test_an_answer_outside_the_contract_is_an_api_error_not_a_crash() -> None:
    client, _ = scripted(Script(token_reply(), reply(200, {"orderId": "o-1"})))

    with pytest.raises(ApiError) as raised:
        client.get_order("o-1")

    assert raised.value.code == "unexpected_answer"
    assert "tenantId" in raised.value.message
