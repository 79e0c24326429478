"""The typed client's webhook methods: what each sends and reads (a scripted
transport), and that registering an endpoint, the one write with no idempotency key,
is never sent twice once it may have been done (the CLI's fake API over HTTP)."""

import json
import select
from urllib.parse import parse_qs, urlsplit

import pytest
from fundrouter_client import (
    ApiError,
    DeliveryState,
    EndpointRequest,
    OrderStatus,
    Unreachable,
    WebhookEventType,
)
from fundrouter_client.transport import KeepAlive, urllib_transport

from tests.cli.fake_api import TENANT, FakeApi, delivery, endpoint
from tests.client.test_client import over_http, scripted
from tests.support.transport import Script, reply, token_reply

ENDPOINT = "we_" + "a" * 32
DELIVERY = "dlv_20261201120000123_" + "b" * 32
HOOK = EndpointRequest(
    url="https://hooks.example.com/fundrouter",
    events=[WebhookEventType.ORDER_STATUS_CHANGED],
    description="ledger",
)


def sent(script: Script) -> list[tuple[str, str, object]]:
    """(method, path and query, JSON body) of each API request, after the token's."""
    return [
        (method, urlsplit(url).path.removeprefix("/api") + _query(url), _body(data))
        for method, url, data, _ in script.sent[1:]
    ]


def _query(url: str) -> str:
    return f"?{urlsplit(url).query}" if urlsplit(url).query else ""


def _body(data: bytes | None) -> object:
    return None if data is None else json.loads(data)


def test_endpoints_are_created_listed_read_rotated_and_deleted_as_documented() -> None:
    rotated = endpoint(ENDPOINT, version=2, previousSecretExpiresAt="2026-12-02T12:00:00.000Z")
    script = Script(
        token_reply(),
        reply(201, {"endpoint": endpoint(ENDPOINT, description="ledger"), "secret": "whsec_1"}),
        reply(200, {"items": [endpoint(ENDPOINT)]}),
        reply(200, endpoint(ENDPOINT)),
        reply(200, {"endpoint": rotated, "secret": "whsec_2"}),
        reply(200, {"endpoint": rotated, "secret": "whsec_3"}),
        reply(200, rotated),
    )
    client, _ = scripted(script)

    created = client.create_webhook(HOOK)
    listed = client.list_webhooks()
    read = client.get_webhook(ENDPOINT)
    rotation = client.rotate_webhook_secret(ENDPOINT, grace_seconds=0)
    default_rotation = client.rotate_webhook_secret(ENDPOINT)
    deleted = client.delete_webhook(ENDPOINT)

    assert (created.endpoint.endpoint_id, created.secret) == (ENDPOINT, "whsec_1")
    assert created.endpoint.description == "ledger"
    assert "whsec_1" not in repr(created)  # a secret is not printed by accident
    assert [e.endpoint_id for e in listed] == [ENDPOINT] == [read.endpoint_id]
    assert read.events == [WebhookEventType.ORDER_STATUS_CHANGED]
    assert rotation.secret == "whsec_2"
    assert default_rotation.endpoint.previous_secret_expires_at is not None
    assert deleted.version == 2
    rotate = f"/v1/webhooks/{ENDPOINT}/secret/rotate"
    registered = {"url": HOOK.url, "events": ["order.status_changed"], "description": "ledger"}
    assert sent(script) == [
        ("POST", "/v1/webhooks", registered),
        ("GET", "/v1/webhooks", None),
        ("GET", f"/v1/webhooks/{ENDPOINT}", None),
        ("POST", rotate, {"graceSeconds": 0}),
        ("POST", rotate, {}),  # the server's default grace, a day
        ("DELETE", f"/v1/webhooks/{ENDPOINT}", None),
    ]


def test_iter_deliveries_follows_every_cursor_and_a_delivery_is_read_and_resent() -> None:
    pages = [
        reply(200, {"items": [delivery("dlv-3"), delivery("dlv-2")], "nextCursor": "c1"}),
        reply(200, {"items": [delivery(DELIVERY)], "nextCursor": None}),
    ]
    due = delivery(DELIVERY, state="PENDING", nextAttemptAt="2026-12-01T13:00:00.000Z")
    script = Script(token_reply(), *pages, reply(200, delivery(DELIVERY)), reply(202, due))
    client, _ = scripted(script)

    listed = list(client.iter_deliveries(ENDPOINT, state=DeliveryState.DELIVERED, page_size=2))
    read = client.get_delivery(ENDPOINT, DELIVERY)
    resent = client.resend_delivery(ENDPOINT, DELIVERY)

    assert [d.delivery_id for d in listed] == ["dlv-3", "dlv-2", DELIVERY]
    assert read.payload.status is OrderStatus.MATCHED
    assert read.payload.previous_status is OrderStatus.RECEIVED
    assert (read.payload.version, read.payload.tenant_id) == (2, TENANT[0])
    assert [(a.status_code, a.duration_ms) for a in read.attempts] == [(500, 31), (204, 12)]
    assert (resent.state, resent.next_attempt_at is not None) == (DeliveryState.PENDING, True)
    deliveries = f"/v1/webhooks/{ENDPOINT}/deliveries"
    queries = [parse_qs(urlsplit(url).query) for _, url, _, _ in script.sent[1:3]]
    assert queries == [
        {"state": ["DELIVERED"], "limit": ["2"]},
        {"state": ["DELIVERED"], "limit": ["2"], "cursor": ["c1"]},
    ]
    assert sent(script)[2:] == [
        ("GET", f"{deliveries}/{DELIVERY}", None),
        ("POST", f"{deliveries}/{DELIVERY}/resend", None),
    ]


def test_another_tenants_endpoint_is_an_api_error_naming_the_code() -> None:
    missing = {"error": {"code": "webhook_not_found", "message": "not found", "fields": []}}
    client, _ = scripted(Script(token_reply(), reply(404, missing)))

    with pytest.raises(ApiError) as raised:
        client.list_deliveries(ENDPOINT)

    assert (raised.value.status, raised.value.code) == (404, "webhook_not_found")


def test_an_endpoint_whose_answer_was_lost_is_not_registered_again(fake: FakeApi) -> None:
    """The server stored the endpoint, then the connection broke: sent again, it would
    be a second endpoint with a secret nobody holds, sent every status change."""
    for transport in (urllib_transport, None):  # a new connection each time, or kept alive
        client = over_http(fake, TENANT, transport=transport, sleep=lambda _: None)
        client.token()  # a kept connection to break
        fake.drop_answer = True
        before = len(fake.webhooks)

        with pytest.raises(Unreachable):
            client.create_webhook(HOOK)

        assert len(fake.webhooks) == before + 1
        assert fake.requests.count(("POST", "/api/v1/webhooks")) == len(fake.webhooks)


def test_a_kept_connection_the_server_closed_is_not_used_for_a_registration(
    fake: FakeApi,
) -> None:
    """Closed while idle (as servers do): a new connection, not a POST sent into the
    closed one, which could then not be sent again."""
    client = over_http(fake, TENANT)
    fake.hang_up = True
    client.token()
    assert isinstance(client.transport, KeepAlive)
    [kept] = client.transport._local.kept.values()
    select.select([kept.sock], [], [], 5)  # the server's close has arrived

    assert client.create_webhook(HOOK).secret == f"whsec_{len(fake.webhooks)}"
    assert len(fake.connections) == 2
