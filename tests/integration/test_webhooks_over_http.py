"""Signed webhooks on the local stack: two tenants each register a real HTTP receiver on
127.0.0.1. One tenant's order goes through its life (RECEIVED to REPAID) while its
receiver answers 500 to the first two attempts of each: the deployed WebhookFunction
retries after its backoff (seconds on the local stack), and
every status change arrives, signed with that endpoint's secret, each with its order
version; the delivery log lists every attempt the receiver saw; the other tenant's
receiver gets nothing of that order. Endpoints and the log go through the typed
fundrouter-client, so its webhook models read what the stack answers."""

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fundrouter.service.matching import LineCatalog
from fundrouter_client import (
    ApiError,
    Client,
    DeliveryState,
    EndpointRequest,
    WebhookEventType,
)

from tests.support.factories import line_body, order_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

CATALOG_TTL = LineCatalog.__init__.__defaults__[0]  # type: ignore[index]
SCOPES = "fundrouter/orders.write fundrouter/orders.read"
FAILURES_EACH = 2


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering 500 to the first `failures` requests of
    each delivery, then 204."""

    server: ThreadingHTTPServer
    failures: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_order(self, order_id: str) -> list[Received]:
        return [r for r in list(self.received) if r.payload.get("orderId") == order_id]


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            delivery = self.headers["Fundrouter-Delivery-Id"]
            with receiver.lock:
                earlier = [
                    r for r in receiver.received if r.headers["Fundrouter-Delivery-Id"] == delivery
                ]
                status = 500 if len(earlier) < receiver.failures else 204
                receiver.received.append(Received(dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    receiver = Receiver(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


def delivered_changes(receiver: Receiver, order_id: str) -> set[tuple[int, str]]:
    return {
        (r.payload["version"], r.payload["status"])
        for r in receiver.of_order(order_id)
        if r.answered == 204
    }


def verified(secret: str, received: Received) -> bool:
    """docs/api.md's check: HMAC-SHA256 of `t.` + the raw body, a recent `t`."""
    fields = [p.split("=", 1) for p in received.headers["Fundrouter-Signature"].split(",")]
    [stamp] = [v for k, v in fields if k == "t"]
    signed = f"{stamp}.".encode() + received.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    recent = abs(time.time() - int(stamp)) < 300
    return recent and any(k == "v1" and hmac.compare_digest(v, expected) for k, v in fields)


@dataclass
class Tenant:
    stack: LocalStack
    token: str
    client: Client
    receiver: Receiver
    endpoint_id: str = ""
    secret: str = ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = self.stack.call(method, path, self.token, body)
        return answer.status, answer.body


@pytest.fixture
def tenants(local_stack: LocalStack) -> Iterator[tuple[Tenant, Tenant]]:
    pair = tuple(
        Tenant(
            local_stack,
            local_stack.token(who, SCOPES),
            local_stack.typed_client(who, SCOPES),
            start_receiver(),
        )
        for who in ("TENANT2", "TENANT")
    )
    events = [WebhookEventType.ORDER_STATUS_CHANGED]
    for tenant in pair:
        created = tenant.client.create_webhook(
            EndpointRequest(url=tenant.receiver.url, events=events)
        )
        tenant.endpoint_id, tenant.secret = created.endpoint.endpoint_id, created.secret
    yield pair[0], pair[1]
    for tenant in pair:  # its pending deliveries are cancelled: nothing keeps retrying
        tenant.client.delete_webhook(tenant.endpoint_id)
        tenant.receiver.server.shutdown()


def test_every_status_change_arrives_signed_after_retries_and_only_at_its_tenant(
    local_stack: LocalStack, tenants: tuple[Tenant, Tenant]
) -> None:
    owner, other = tenants
    admin = local_stack.token("ADMIN", "fundrouter/lines.admin")
    product = f"p{uuid.uuid4().hex[:10]}"
    line = line_body(funderId="bank-w", name="webhooks", products=[product], priority=0)
    assert local_stack.call("PUT", f"/v1/lines/hooks-{product}", admin, line).status == 201
    time.sleep(CATALOG_TTL + 0.5)
    order_id = f"hooks-{uuid.uuid4().hex[:10]}"
    owner.receiver.failures = FAILURES_EACH

    body = order_body(orderId=order_id, amount=300_000, product=product, customer={"id": "c-1"})
    assert owner.call("POST", "/v1/orders", body)[0] == 202
    deadline = time.monotonic() + 15
    while owner.call("GET", f"/v1/orders/{order_id}")[1]["status"] != "MATCHED":
        assert time.monotonic() < deadline, "the order was not matched"
        time.sleep(0.2)
    for kind, amount in (("APPROVED", None), ("DISBURSED", 300_000), ("REPAID", 300_000)):
        event = {"eventId": f"evt-{uuid.uuid4().hex[:8]}", "type": kind, "amount": amount}
        status, _ = owner.call("POST", f"/v1/orders/{order_id}/events", event)
        assert status == 200
    history = owner.call("GET", f"/v1/orders/{order_id}/history")[1]["items"]
    expected = [(version, entry["status"]) for version, entry in enumerate(history, 1)]
    deadline = time.monotonic() + 40
    while delivered_changes(owner.receiver, order_id) != set(expected):
        assert time.monotonic() < deadline, owner.receiver.of_order(order_id)
        time.sleep(0.5)

    seen = owner.receiver.of_order(order_id)
    delivered = [r.payload for r in seen if r.answered == 204]
    assert [s for _, s in expected] == ["RECEIVED", "MATCHED", "APPROVED", "DISBURSED", "REPAID"]
    assert all(verified(owner.secret, r) for r in seen)
    assert not any(verified(other.secret, r) for r in seen)
    assert sorted((p["version"], p["status"]) for p in delivered) == expected
    assert [p["previousStatus"] for p in sorted(delivered, key=lambda p: p["version"])] == [
        None, "RECEIVED", "MATCHED", "APPROVED", "DISBURSED",
    ]  # fmt: skip
    assert [r.answered for r in seen].count(500) == FAILURES_EACH * len(expected)
    # The log lists every attempt the receiver saw, with the status it answered.
    log = owner.client.iter_deliveries(owner.endpoint_id)
    logged = {d.delivery_id: d for d in log if d.order_id == order_id}
    answered: dict[str, list[int]] = {}
    for r in seen:
        answered.setdefault(r.headers["Fundrouter-Delivery-Id"], []).append(r.answered)
    assert {d: [a.status_code for a in logged[d].attempts] for d in logged} == answered
    assert {d.state for d in logged.values()} == {DeliveryState.DELIVERED}
    assert all(d.attempt_count == len(d.attempts) for d in logged.values())
    assert sorted((d.payload.version, d.payload.status) for d in logged.values()) == expected
    last = max(logged.values(), key=lambda d: d.order_version)
    assert owner.client.get_delivery(owner.endpoint_id, last.delivery_id) == last
    assert owner.endpoint_id in [e.endpoint_id for e in owner.client.list_webhooks()]
    # The other tenant's receiver got nothing of this order, nor can it read the log.
    assert other.receiver.of_order(order_id) == []
    with pytest.raises(ApiError) as refused:
        other.client.list_deliveries(owner.endpoint_id)
    assert (refused.value.status, refused.value.code) == (404, "webhook_not_found")
