"""A small stand-in for a fundrouter stack over real HTTP on 127.0.0.1: a token
endpoint and a few API routes with canned answers, so the CLI's commands run end to
end (HTTP, tokens, errors, rendering) in unit tests without the local stack."""

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.support.factories import API_EXAMPLE, line_body

TENANT = ("tenant-id", "tenant-secret")
ADMIN = ("admin-id", "admin-secret")


def line(line_id: str, **changes: Any) -> dict[str, Any]:
    """The resource GET /v1/lines/{lineId} answers for docs/api.md's example line."""
    return {
        "lineId": line_id,
        **line_body(API_EXAMPLE, terms=[3, 6, 12], timezone="Asia/Shanghai"),
        "reserved": 125_000_000,
        "drawn": 100_000_000,
        "available": 275_000_000,
        "usedToday": 25_000_000,
        "availableToday": None,
        "day": "2026-11-25",
        "orders": {"MATCHED": 1},
        "warnings": [],
        "configVersion": 1,
        "createdAt": "2026-11-25T00:00:00.000Z",
        "updatedAt": "2026-11-25T00:00:00.000Z",
    } | changes


def order(order_id: str, **changes: Any) -> dict[str, Any]:
    built = {
        "orderId": order_id,
        "tenantId": TENANT[0],
        "amount": 1_250_000,
        "currency": "CNY",
        "termMonths": 12,
        "product": "installment",
        "customer": {"id": "c-829", "region": "GD", "creditGrade": "B"},
        "metadata": {"channel": "app"},
        "status": "MATCHED",
        "lineId": "bank-a-consumer",
        "funderId": "bank-a",
        "reserved": 1_250_000,
        "outstanding": 0,
        "holdExpiresAt": "2026-11-25T00:15:00.000Z",
        "decision": {
            "strategy": "PRIORITY",
            "candidates": [
                {"lineId": "bank-a-consumer", "outcome": "CLAIMED", "code": None, "reason": None},
                {
                    "lineId": "trust-b",
                    "outcome": "INELIGIBLE",
                    "code": "AMOUNT_ABOVE_MAX",
                    "reason": "amount above maxAmount 1000000",
                },
            ],
        },
        "declinedLineIds": [],
        "history": [
            {"status": "RECEIVED", "at": "2026-11-25T00:00:00.000Z"},
            {"status": "MATCHED", "at": "2026-11-25T00:00:00.040Z", "lineId": "bank-a-consumer"},
        ],
        "createdAt": "2026-11-25T00:00:00.000Z",
        "updatedAt": "2026-11-25T00:00:00.040Z",
        "version": 2,
    } | changes
    return {"historyTotal": len(built["history"])} | built


def endpoint(endpoint_id: str, **changes: Any) -> dict[str, Any]:
    """A webhook endpoint resource (GET /v1/webhooks/{endpointId})."""
    return {
        "endpointId": endpoint_id,
        "url": "https://hooks.example.com/fundrouter",
        "events": ["order.status_changed"],
        "description": None,
        "createdAt": "2026-12-01T12:00:00.000Z",
        "updatedAt": "2026-12-01T12:00:00.000Z",
        "secretCreatedAt": "2026-12-01T12:00:00.000Z",
        "previousSecretExpiresAt": None,
        "version": 1,
    } | changes


def delivery(delivery_id: str, order_id: str = "o-1", **changes: Any) -> dict[str, Any]:
    """A delivery of docs/api.md's example status change, delivered at its second try."""
    event_id = "evt_2f6c0e9d1b7a4c3e8f5a6b7c8d9e0f1a"
    return {
        "deliveryId": delivery_id,
        "endpointId": "we_" + "0" * 32,
        "eventId": event_id,
        "eventType": "order.status_changed",
        "orderId": order_id,
        "orderVersion": 2,
        "state": "DELIVERED",
        "nextAttemptAt": None,
        "attemptCount": 2,
        "attempts": [
            {"at": "2026-12-01T12:00:00.200Z", "durationMs": 31, "statusCode": 500, "error": None},
            {"at": "2026-12-01T12:00:31.000Z", "durationMs": 12, "statusCode": 204, "error": None},
        ],
        "createdAt": "2026-12-01T12:00:00.123Z",
        "finishedAt": "2026-12-01T12:00:31.012Z",
        "payload": {
            "id": event_id,
            "type": "order.status_changed",
            "tenantId": TENANT[0],
            "orderId": order_id,
            "version": 2,
            "status": "MATCHED",
            "previousStatus": "RECEIVED",
            "occurredAt": "2026-12-01T12:00:00.123Z",
        },
    } | changes


def tenant(tenant_id: str, **changes: Any) -> dict[str, Any]:
    """A self-service tenant resource (GET /v1/tenants/{tenantId}), its first client."""
    return {
        "tenantId": tenant_id,
        "name": "Shop A",
        "status": "ACTIVE",
        "scopes": ["fundrouter/orders.write", "fundrouter/orders.read"],
        "ordersPerMinute": 600,
        "clients": [{"clientId": tenant_id, "createdAt": "2026-12-01T12:00:00.000Z"}],
        "createdAt": "2026-12-01T12:00:00.000Z",
        "updatedAt": "2026-12-01T12:00:00.000Z",
        "version": 1,
    } | changes


@dataclass
class FakeApi:
    lines: list[dict[str, Any]] = field(default_factory=lambda: [line("bank-a-consumer")])
    orders: dict[str, dict[str, Any]] = field(default_factory=lambda: {"o-1": order("o-1")})
    requests: list[tuple[str, str]] = field(default_factory=list)
    # What POST /v1/admin/status-events/republish answers, one reply per call.
    republish_replies: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)  # (orderId, body) posted
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # endpoints registered
    connections: set[tuple[str, int]] = field(default_factory=set)  # client addresses seen
    hang_up: bool = False  # close the connection after the next answer, without saying so
    drop_answer: bool = False  # do the next write, then close the connection without answering
    url: str = ""

    def env(self, **changes: str) -> dict[str, str]:
        return {
            "FUNDROUTER_API_URL": f"{self.url}/api",
            "FUNDROUTER_TOKEN_URL": f"{self.url}/oauth2/token",
            "FUNDROUTER_TENANT_CLIENT_ID": TENANT[0],
            "FUNDROUTER_TENANT_CLIENT_SECRET": TENANT[1],
            "FUNDROUTER_ADMIN_CLIENT_ID": ADMIN[0],
            "FUNDROUTER_ADMIN_CLIENT_SECRET": ADMIN[1],
        } | changes


class Handler(BaseHTTPRequestHandler):
    api: FakeApi  # set on the subclass serving() makes
    protocol_version = "HTTP/1.1"  # connections stay open between requests, as API Gateway's

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        if self.api.hang_up:
            self.api.hang_up, self.close_connection = False, True

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.api.requests.append((method, parts.path))
        self.api.connections.add(self.client_address[:2])
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path == "/oauth2/token":
            self._token(raw)
            return
        who = self.headers.get("authorization", "")
        if who not in {"Bearer token-TENANT", "Bearer token-ADMIN"}:
            self._send(401, {"message": "Unauthorized"})
            return
        sent = json.loads(raw) if raw else None
        self.api.bodies.append(sent)
        path = parts.path.removeprefix("/api")
        if method == "POST" and path.startswith("/v1/orders/") and path.endswith("/events"):
            order_id = path.split("/")[3]
            self.api.events.append((order_id, json.loads(raw)))
            self._send(200, self.api.orders[order_id] | {"status": "APPROVED", "version": 3})
            return
        status, body = self._answer(method, path, who.endswith("ADMIN"), sent)
        if self.api.drop_answer and method != "GET":
            self.api.drop_answer, self.close_connection = False, True
            return
        self._send(status, body)

    def _token(self, raw: bytes) -> None:
        basic = self.headers.get("authorization", "").removeprefix("Basic ")
        client_id, _, secret = base64.b64decode(basic).decode().partition(":")
        role = {TENANT: "TENANT", ADMIN: "ADMIN"}.get((client_id, secret))
        if role is None or b"grant_type=client_credentials" not in raw:
            error = {"error": "invalid_client", "error_description": "Invalid client credentials."}
            self._send(400, error)
            return
        self._send(200, {"access_token": f"token-{role}", "expires_in": 3600})

    def _answer(self, method: str, path: str, admin: bool, sent: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/v1/lines"):
            return (200, {"items": self.api.lines}) if admin else (403, {"message": "Forbidden"})
        if (method, path) == ("POST", "/v1/admin/status-events/republish"):
            return (
                (200, self.api.republish_replies.pop(0))
                if admin
                else (403, {"message": "Forbidden"})
            )
        if (method, path) == ("GET", "/v1/orders"):
            return 200, {"items": list(self.api.orders.values()), "nextCursor": None}
        if method == "GET" and path.startswith("/v1/orders/"):
            found = self.api.orders.get(path.rsplit("/", 1)[1])
            if found is None:
                error = {"code": "order_not_found", "message": "order not found", "fields": []}
                return 404, {"error": error}
            return 200, found
        return self._write(method, path, admin, sent)

    def _write(self, method: str, path: str, admin: bool, body: Any) -> tuple[int, Any]:
        """PUT of a line and POST of an order, for `fundrouter load`; POST of a webhook
        endpoint (each one new, as the API's)."""
        if method == "PUT" and path.startswith("/v1/lines/") and admin:
            put = line(path.rsplit("/", 1)[1], **body, reserved=0, drawn=0, usedToday=0)
            self.api.lines.append(put | {"available": body["limit"]})
            return 201, put
        if (method, path) == ("POST", "/v1/orders"):
            stored = self.api.orders.get(body["orderId"])
            if stored is not None:  # the same order again: as it stands (api.md)
                return 200, stored
            return 202, self._unmatched(body)
        if (method, path) == ("POST", "/v1/webhooks"):
            created = endpoint(f"we_{len(self.api.webhooks):032x}", **body)
            self.api.webhooks.append(created)
            return 201, {"endpoint": created, "secret": f"whsec_{len(self.api.webhooks)}"}
        return 404, {"message": "Not Found"}

    def _unmatched(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new order as the matcher leaves it 40 ms after intake when no line takes it."""
        decided = order(body["orderId"], **body, status="UNMATCHED", reserved=0)
        decided |= {"lineId": None, "funderId": None, "holdExpiresAt": None}
        decided["history"] = [
            decided["history"][0],
            {"status": "UNMATCHED", "at": "2026-11-25T00:00:00.040Z"},
        ]
        decided["historyTotal"] = 2
        self.api.orders[body["orderId"]] = decided
        return decided


@contextmanager
def serving(api: FakeApi) -> Iterator[FakeApi]:
    handler = type("FakeApiHandler", (Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
