"""Signed webhooks on moto: endpoints through the API, status changes fanned out and
attempted through the WebhookFunction's batch (a scripted receiver answering, a
clock the test moves), retries prompted on the queue with their backoff, dead
deliveries parked and re-sent, due ones found on the sparse index, secrets rotated."""

import copy
import hashlib
import hmac
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fundrouter.domain.orders import OrderStatus
from fundrouter.domain.webhooks import Attempt, EndpointRequest, RetryPolicy
from fundrouter.persistence.webhooks import DynamoWebhookStore
from fundrouter.service.tracking import OrderStatusChanged
from fundrouter.service.webhooks import WebhookDispatcher, WebhookService
from fundrouter.triggers.webhooks import deliver_batch

from tests.support.api import built_from_environment, serve
from tests.support.aws import FakeLambdaContext, scan_all
from tests.support.events import event_names, load_event
from tests.support.handlers import handler_module
from tests.support.moto_speed import speed_up_moto
from tests.support.requests import Requests
from tests.support.template import create_table_kwargs, resources

TABLE = "fundrouter-test-webhooks"
A, B = "tenant-a", "tenant-b"
WRITE_READ = "fundrouter/orders.write fundrouter/orders.read"
POLICY = RetryPolicy(base_seconds=30, max_seconds=3600, window_seconds=86400)


@dataclass
class Queue:
    prompts: list[tuple[tuple[str, str], int]] = field(default_factory=list)

    def send(self, keys: Any, delay_seconds: int = 0) -> None:
        self.prompts += [(tuple(key), delay_seconds) for key in keys]  # type: ignore[misc]


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    clock: "Clock | None" = None
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        self.requests.append((url, headers, body))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        assert self.clock is not None
        return Attempt(at=self.clock(), duration_ms=12, status_code=status)


@dataclass
class Clock:
    now: datetime = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Webhooks:
    client: Any
    store: DynamoWebhookStore
    clock: Clock
    queue: Queue
    receiver: Receiver

    @property
    def service(self) -> WebhookService:
        return WebhookService(self.store, self.queue, self.clock, allow_loopback=False)

    @property
    def dispatcher(self) -> WebhookDispatcher:
        return WebhookDispatcher(
            self.store, self.queue, self.receiver, self.clock, policy=POLICY, jitter=lambda: 0.0
        )

    def call(
        self, method: str, path: str, body: Any = None, tenant: str = A, scope: str = WRITE_READ
    ) -> tuple[int, Any]:
        event = copy.deepcopy(load_event("api/get_order.json"))
        path_only, _, query = path.partition("?")
        parts = path_only.strip("/").split("/")
        names = {2: "endpointId", 4: "deliveryId"}
        params = {names[i]: parts[i] for i in names if i < len(parts)}
        template = "/".join("{" + names[i] + "}" if i in names else p for i, p in enumerate(parts))
        route = f"{method} /{template}"
        claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
        claims |= {"client_id": tenant, "sub": tenant, "scope": scope}
        event |= {"routeKey": route, "rawPath": path_only, "rawQueryString": query}
        event["requestContext"] |= {"routeKey": route}
        event["requestContext"]["http"] |= {"method": method, "path": path_only}
        event["pathParameters"] = params
        event["queryStringParameters"] = dict(
            pair.split("=", 1) for pair in query.split("&") if pair
        )
        if body is not None:
            event["body"] = json.dumps(body)
            event["headers"]["content-type"] = "application/json"
        answer = serve(event, webhooks=self.service)
        return answer["statusCode"], json.loads(answer["body"]) if answer["body"] else None

    def register(self, tenant: str = A, url: str = "https://hooks.example.com/a") -> dict[str, Any]:
        status, created = self.call(
            "POST", "/v1/webhooks", {"url": url, "events": ["order.status_changed"]}, tenant
        )
        assert status == 201, created
        return dict(created)

    def change(self, tenant: str, order: str, version: int, to: OrderStatus) -> dict[str, Any]:
        """What the queue holds for one status change: the bus's event, as the rule sent it."""
        detail = OrderStatusChanged(
            tenant_id=tenant,
            order_id=order,
            from_status=None if version == 1 else OrderStatus.RECEIVED,
            to_status=to,
            line_id=None,
            funder_id=None,
            amount=100,
            currency="CNY",
            reserved=0,
            outstanding=0,
            at=self.clock.now,
            version=version,
        )
        event = {
            "detail-type": "OrderStatusChanged",
            "source": "fundrouter",
            "detail": detail.detail(),
        }
        return {"messageId": f"m-{order}-{version}", "body": json.dumps(event)}

    def batch(self, *records: dict[str, Any]) -> dict[str, Any]:
        return deliver_batch({"Records": list(records)}, self.dispatcher)

    def prompt(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        body = json.dumps({"endpointId": endpoint_id, "deliveryId": delivery_id})
        return {"messageId": f"p-{delivery_id}", "body": body}

    def deliveries(self, endpoint_id: str, query: str = "") -> list[dict[str, Any]]:
        status, page = self.call("GET", f"/v1/webhooks/{endpoint_id}/deliveries{query}")
        assert status == 200, page
        return list(page["items"])


@pytest.fixture
def hooks(aws: None, monkeypatch: pytest.MonkeyPatch) -> Webhooks:
    speed_up_moto(monkeypatch)
    client = boto3.client("dynamodb")
    client.create_table(**create_table_kwargs("WebhooksTable", TABLE))
    clock = Clock()
    return Webhooks(
        client, DynamoWebhookStore(client, TABLE), clock, Queue(), Receiver(clock=clock)
    )


def verified(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """The check docs/api.md gives receivers, written here from the documented scheme."""
    fields = [part.split("=", 1) for part in headers["Fundrouter-Signature"].split(",")]
    timestamp = next(v for k, v in fields if k == "t")
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in fields)


def test_a_tenant_manages_its_endpoints_and_sees_the_secret_once(hooks: Webhooks) -> None:
    created = hooks.register()
    endpoint_id = created["endpoint"]["endpointId"]
    hooks.register(B, "https://hooks.example.org/b")

    read = hooks.call("GET", f"/v1/webhooks/{endpoint_id}")
    listed = hooks.call("GET", "/v1/webhooks")
    other = hooks.call("GET", f"/v1/webhooks/{endpoint_id}", tenant=B)
    deleted = hooks.call("DELETE", f"/v1/webhooks/{endpoint_id}")

    assert created["secret"].startswith("whsec_")
    assert read == (200, created["endpoint"])
    assert "secret" not in json.dumps(read[1]).replace("secretCreatedAt", "").replace(
        "previousSecretExpiresAt", ""
    )
    assert [e["endpointId"] for e in listed[1]["items"]] == [endpoint_id]
    assert (other[0], other[1]["error"]["code"]) == (404, "webhook_not_found")
    assert deleted[0] == 200
    assert hooks.call("GET", f"/v1/webhooks/{endpoint_id}")[0] == 404
    assert hooks.call("GET", "/v1/webhooks", scope="fundrouter/orders.write")[0] == 403


HOOK = "https://hooks.example.com/"
STATUS_CHANGED = ["order.status_changed"]
PRIVATE = "must not be a private, loopback or link-local address"
HTTPS_ONLY, AFTER, KNOWN = "must be an https:// URL", "after validation", "'order.status_changed'"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"url": "http://hooks.example.com/", "events": STATUS_CHANGED}, "url", HTTPS_ONLY),
        ({"url": "https://169.254.169.254/", "events": STATUS_CHANGED}, "url", PRIVATE),
        ({"url": HOOK, "events": []}, "events", f"List should have at least 1 item {AFTER}, not 0"),
        ({"url": HOOK, "events": ["order.deleted"]}, "events.0", f"Input should be {KNOWN}"),
        ({"url": HOOK, "events": STATUS_CHANGED * 2}, "events", "entries must be unique"),
        ({"url": HOOK, "events": STATUS_CHANGED, "secret": "x"}, "secret", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_endpoint_is_refused_with_its_field_and_reason_writing_nothing(
    hooks: Webhooks, body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = hooks.call("POST", "/v1/webhooks", body)

    assert (status, answer["error"]["fields"]) == (422, [{"field": field, "reason": reason}])
    assert scan_all(hooks.client, TABLE) == []


def test_a_status_change_reaches_each_endpoint_of_its_tenant_signed_and_no_other(
    hooks: Webhooks,
) -> None:
    a1, a2 = hooks.register(), hooks.register(url="https://hooks.example.com/a2")
    hooks.register(B, "https://hooks.example.org/b")

    assert hooks.batch(hooks.change(A, "o-1", 2, OrderStatus.MATCHED)) == {"batchItemFailures": []}
    # The same event again (the bus and the queue deliver at least once): nothing new.
    hooks.batch(hooks.change(A, "o-1", 2, OrderStatus.MATCHED))

    sent = sorted(hooks.receiver.requests)
    secrets = {a1["endpoint"]["url"]: a1["secret"], a2["endpoint"]["url"]: a2["secret"]}
    assert [url for url, _, _ in sent] == [
        "https://hooks.example.com/a",
        "https://hooks.example.com/a2",
    ]
    for url, headers, body in sent:
        assert verified(headers, body, secrets[url])
        assert not verified(headers, body, a2["secret"] if url.endswith("/a") else a1["secret"])
        payload = json.loads(body)
        assert headers["Fundrouter-Event-Id"] == payload["id"]
        assert payload | {"id": None, "occurredAt": None} == {
            "id": None, "type": "order.status_changed", "tenantId": A, "orderId": "o-1",
            "version": 2, "status": "MATCHED", "previousStatus": "RECEIVED", "occurredAt": None,
        }  # fmt: skip
    assert {h["Fundrouter-Delivery-Id"] for _, h, _ in sent} == {
        d["deliveryId"] for d in hooks.deliveries(a1["endpoint"]["endpointId"])
    } | {d["deliveryId"] for d in hooks.deliveries(a2["endpoint"]["endpointId"])}


def test_failures_are_retried_after_the_backoff_then_delivered_with_every_attempt_logged(
    hooks: Webhooks,
) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    hooks.receiver.statuses = [500, 503, 200]
    hooks.batch(hooks.change(A, "o-2", 1, OrderStatus.RECEIVED))

    for wait in (15, 30):  # half of 30 s, then of 60 s (jitter 0)
        [(key, delay)] = hooks.queue.prompts
        hooks.queue.prompts.clear()
        assert delay == wait
        assert hooks.batch(hooks.prompt(*key)) == {"batchItemFailures": []}  # not due yet
        assert len(hooks.receiver.requests) == (2 if wait == 30 else 1)
        hooks.clock.now += timedelta(seconds=delay)
        hooks.batch(hooks.prompt(*key))

    [delivery] = hooks.deliveries(endpoint_id)
    assert hooks.queue.prompts == []
    assert (delivery["state"], delivery["attemptCount"]) == ("DELIVERED", 3)
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["durationMs"] for a in delivery["attempts"]] == [12] * 3
    assert delivery["payload"] == json.loads(hooks.receiver.requests[-1][2])  # as sent


def test_after_a_day_of_failures_it_is_dead_listable_and_resent(hooks: Webhooks) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    hooks.receiver.statuses = [500]
    hooks.batch(hooks.change(A, "o-3", 1, OrderStatus.RECEIVED))
    # Hours apart (fewer attempts, the same rule): still a whole day of them.
    slow = RetryPolicy(base_seconds=3600, max_seconds=6 * 3600, window_seconds=86400)
    dispatcher = WebhookDispatcher(
        hooks.store, hooks.queue, hooks.receiver, hooks.clock, policy=slow, jitter=lambda: 0.0
    )
    [delivery] = hooks.deliveries(endpoint_id)
    while delivery["state"] == "PENDING":
        hooks.clock.now = datetime.fromisoformat(delivery["nextAttemptAt"])
        dispatcher.attempt(endpoint_id, delivery["deliveryId"])
        [delivery] = hooks.deliveries(endpoint_id)

    dead = hooks.deliveries(endpoint_id, "?state=DEAD")
    delivered = hooks.deliveries(endpoint_id, "?state=DELIVERED")
    hooks.queue.prompts.clear()
    status, resent = hooks.call(
        "POST", f"/v1/webhooks/{endpoint_id}/deliveries/{delivery['deliveryId']}/resend"
    )
    hooks.receiver.statuses = [200]
    made = len(hooks.receiver.requests)
    hooks.receiver.requests.clear()
    hooks.batch(hooks.prompt(endpoint_id, delivery["deliveryId"]))

    assert delivery["state"] == "DEAD"
    assert datetime.fromisoformat(delivery["finishedAt"]) - hooks.clock.now == timedelta(0)
    assert [d["deliveryId"] for d in dead] == [delivery["deliveryId"]]
    assert delivered == []
    assert delivery["attemptCount"] == made == len(delivery["attempts"])
    first, last = (datetime.fromisoformat(delivery["attempts"][i]["at"]) for i in (0, -1))
    assert last - first >= timedelta(days=1)
    assert (status, resent["state"]) == (202, "PENDING")
    assert hooks.queue.prompts == [((endpoint_id, delivery["deliveryId"]), 0)]
    [after] = hooks.deliveries(endpoint_id)
    assert (after["state"], after["attemptCount"]) == ("DELIVERED", delivery["attemptCount"] + 1)


def test_due_deliveries_are_found_on_the_sparse_index_never_by_a_scan(hooks: Webhooks) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    for version in range(1, 6):  # five delivered: off the index
        hooks.batch(hooks.change(A, "o-4", version, OrderStatus.RECEIVED))
    hooks.receiver.statuses = [500]
    hooks.receiver.requests.clear()
    hooks.batch(hooks.change(A, "o-5", 1, OrderStatus.RECEIVED))
    [(key, _)] = hooks.queue.prompts
    requests = Requests(hooks.client)

    early = hooks.dispatcher.sweep()
    hooks.clock.now += timedelta(seconds=15)
    hooks.queue.prompts.clear()
    due = hooks.dispatcher.sweep()

    assert (early, due) == (0, 1)
    assert hooks.queue.prompts == [(key, 0)]
    assert set(requests.names) == {"Query"}
    assert len(hooks.deliveries(endpoint_id)) == 6


def test_an_attempt_under_way_holds_the_delivery(hooks: Webhooks) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    hooks.receiver.statuses = [500]
    hooks.batch(hooks.change(A, "o-6", 1, OrderStatus.RECEIVED))
    hooks.clock.now += timedelta(seconds=15)
    [delivery] = hooks.deliveries(endpoint_id)
    stored = hooks.store.delivery(endpoint_id, delivery["deliveryId"])
    assert stored is not None

    first = hooks.store.claim(stored, hooks.clock.now, hooks.clock.now + timedelta(seconds=60))
    second = hooks.store.claim(stored, hooks.clock.now, hooks.clock.now + timedelta(seconds=60))
    busy = hooks.call(
        "POST", f"/v1/webhooks/{endpoint_id}/deliveries/{delivery['deliveryId']}/resend"
    )

    assert (first, second) == (True, False)
    assert (busy[0], busy[1]["error"]["code"]) == (409, "delivery_busy")
    assert hooks.dispatcher.attempt(endpoint_id, delivery["deliveryId"]) is None
    assert len(hooks.receiver.requests) == 1


def test_a_rotated_secret_signs_beside_the_new_one_for_the_grace_period(hooks: Webhooks) -> None:
    created = hooks.register()
    endpoint_id = created["endpoint"]["endpointId"]

    status, rotated = hooks.call(
        "POST", f"/v1/webhooks/{endpoint_id}/secret/rotate", {"graceSeconds": 3600}
    )
    hooks.batch(hooks.change(A, "o-7", 1, OrderStatus.RECEIVED))
    hooks.clock.now += timedelta(seconds=3600)
    hooks.batch(hooks.change(A, "o-7", 2, OrderStatus.MATCHED))
    bad = hooks.call("POST", f"/v1/webhooks/{endpoint_id}/secret/rotate", {"graceSeconds": -1})

    (_, during, body1), (_, after, body2) = hooks.receiver.requests
    assert status == 200
    assert rotated["secret"] != created["secret"]
    assert rotated["endpoint"]["previousSecretExpiresAt"] is not None
    assert verified(during, body1, created["secret"])
    assert verified(during, body1, rotated["secret"])
    assert verified(after, body2, rotated["secret"])
    assert not verified(after, body2, created["secret"])
    assert (bad[0], bad[1]["error"]["fields"][0]["field"]) == (422, "graceSeconds")


def test_deleting_an_endpoint_cancels_its_pending_deliveries(hooks: Webhooks) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    hooks.receiver.statuses = [500]
    hooks.batch(hooks.change(A, "o-8", 1, OrderStatus.RECEIVED))
    [(key, delay)] = hooks.queue.prompts
    hooks.call("DELETE", f"/v1/webhooks/{endpoint_id}")
    hooks.clock.now += timedelta(seconds=delay)

    cancelled = hooks.dispatcher.attempt(*key)

    assert cancelled is not None
    assert cancelled.state == "CANCELLED"
    assert len(hooks.receiver.requests) == 1
    assert hooks.dispatcher.sweep() == 0


SAMPLES = {
    "webhook_create": (201, None),
    "webhook_list": (200, None),
    "webhook_get": (404, "webhook_not_found"),
    "webhook_delete": (404, "webhook_not_found"),
    "webhook_rotate_secret": (404, "webhook_not_found"),
    "webhook_list_deliveries": (404, "webhook_not_found"),
    "webhook_get_delivery": (404, "webhook_not_found"),
    "webhook_resend_delivery": (404, "webhook_not_found"),
}


def test_every_webhook_sample_event_reaches_its_route(hooks: Webhooks) -> None:
    assert {n for n in event_names("api") if n.startswith("webhook_")} == set(SAMPLES)
    answered = {}
    for name in SAMPLES:
        answer = serve(load_event(f"api/{name}.json"), webhooks=hooks.service)
        body = json.loads(answer["body"])
        answered[name] = (answer["statusCode"], body.get("error", {}).get("code"))

    assert answered == SAMPLES


def test_deliveries_page_newest_first_and_a_forged_cursor_is_422(hooks: Webhooks) -> None:
    endpoint_id = hooks.register()["endpoint"]["endpointId"]
    for version in (1, 2, 3):
        hooks.clock.now += timedelta(seconds=1)
        hooks.batch(hooks.change(A, "o-9", version, OrderStatus.RECEIVED))
    path = f"/v1/webhooks/{endpoint_id}/deliveries"

    first = hooks.call("GET", f"{path}?limit=2")[1]
    second = hooks.call("GET", f"{path}?limit=2&cursor={first['nextCursor']}")[1]
    other_filter = hooks.call("GET", f"{path}?state=DEAD&cursor={first['nextCursor']}")
    forged = hooks.call("GET", f"{path}?cursor=bm9wZQ")

    versions = [d["orderVersion"] for d in first["items"] + second["items"]]
    assert (versions, second["nextCursor"]) == ([3, 2, 1], None)
    assert (other_filter[0], other_filter[1]["error"]["code"]) == (422, "invalid_cursor")
    assert (forged[0], forged[1]["error"]["code"]) == (422, "invalid_cursor")


def test_a_tenant_has_at_most_ten_endpoints(hooks: Webhooks) -> None:
    for n in range(10):
        hooks.register(url=f"https://hooks.example.com/{n}")
    stored = len(scan_all(hooks.client, TABLE))

    status, refused = hooks.call("POST", "/v1/webhooks", {"url": HOOK, "events": STATUS_CHANGED})

    assert (status, refused["error"]["code"]) == (409, "webhook_limit_reached")
    assert len(scan_all(hooks.client, TABLE)) == stored == 10
    assert hooks.register(B)["endpoint"]["url"] == "https://hooks.example.com/a"


def test_the_function_built_from_its_template_environment_fans_out_and_sweeps(
    hooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WebhookFunction as Lambda runs it: its services built from the variables
    template.yaml gives it (the stack's references filled in), on moto."""
    variables = resources("AWS::Serverless::Function")["WebhookFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    queue_url = boto3.client("sqs").create_queue(QueueName="webhooks")["QueueUrl"]
    filled = {"WebhooksTable": TABLE, "WebhookQueue": queue_url, "WebhookAllowLoopbackHttp": "true"}
    filled |= {"WebhookRetryBaseSeconds": "30", "WebhookRetryMaxSeconds": "3600"}
    for name, value in variables.items():
        monkeypatch.setenv(name, filled[value["Ref"]] if isinstance(value, dict) else value)
    # A port nothing listens on, on this machine: the attempt fails without any network.
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    request = EndpointRequest(url=f"http://127.0.0.1:{port}/", events=STATUS_CHANGED)
    local = WebhookService(hooks.store, hooks.queue, hooks.clock, allow_loopback=True)
    endpoint_id = local.create(A, request).endpoint.endpoint_id
    function = handler_module("webhooks", "webhooks_handler")

    with built_from_environment():
        queued = function.handler(
            {"Records": [hooks.change(A, "o-10", 1, OrderStatus.RECEIVED)]}, FakeLambdaContext()
        )
        swept = function.handler({"source": "aws.events"}, FakeLambdaContext())

    [delivery] = hooks.deliveries(endpoint_id)
    assert (queued, swept) == ({"batchItemFailures": []}, {"prompted": 0})
    assert (delivery["state"], delivery["attemptCount"]) == ("PENDING", 1)
    assert delivery["attempts"][0]["statusCode"] is None
    assert delivery["attempts"][0]["error"].startswith("ConnectionRefusedError")
