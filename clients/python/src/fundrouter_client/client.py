"""The fundrouter API as typed methods, one per operation of openapi.json.

Tokens: OAuth2 client credentials from the token URL (Cognito's), cached and fetched
again before they expire (and once more if the API refuses one as expired).

Retries: the API's writes are idempotent by a key in their body (an order's
`orderId`, an event's `eventId`, a line's id in its path), so a request is sent
again, byte for byte, when it was throttled (429), the store or gateway was busy
(502-504), the order or tenant was busy (409 `order_busy`, `line_config_changed`,
`tenant_changed`) or the connection broke before the answer came: a write that did
land the first time is then answered as a replay (200, the order as it stands), never
done twice. The wait is the server's `Retry-After` when it sends one (bounded), else
a jittered doubling. The exceptions make something new each time (a webhook endpoint
with its secret, a tenant, a tenant's new client, which retires the one before it):
they are sent again only when the first cannot have been done: 429, one of those
409s, the API's own 503 (it wrote nothing) or a refused connection.
"""

import base64
import json
import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Final, NamedTuple, Protocol

from pydantic import BaseModel, ValidationError

from fundrouter_client.errors import ApiError, FieldProblem, TokenError, Unreachable
from fundrouter_client.models import (
    AuditReport,
    DeliveryPage,
    DeliveryResource,
    DeliveryState,
    EndpointCreated,
    EndpointList,
    EndpointRequest,
    EndpointResource,
    HistoryEntry,
    HistoryPage,
    LineConfig,
    LineList,
    LinePatch,
    LineResource,
    OrderEvent,
    OrderPage,
    OrderRequest,
    OrderResource,
    OrderStatus,
    RepublishReport,
    RoutingPolicy,
    RoutingResource,
    TenantCredentials,
    TenantPage,
    TenantPatch,
    TenantRequest,
    TenantResource,
)
from fundrouter_client.transport import KeepAlive, Reply, Transport, TransportError

VERSION: Final = "0.1.0"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_CODES: Final = frozenset({"order_busy", "line_config_changed", "tenant_changed"})
TOKEN_MARGIN_SECONDS: Final = 30.0

# (method, path template) of openapi.json -> the Client method that calls it.
OPERATIONS: dict[tuple[str, str], str] = {}


def operation[F: Callable[..., Any]](method: str, path: str) -> Callable[[F], F]:
    """Marks the method that calls `method path` (as openapi.json spells the path)."""

    def register(function: F) -> F:
        OPERATIONS[(method, path)] = function.__name__
        return function

    return register


@dataclass(frozen=True)
class Credentials:
    """An OAuth2 client of the stack's user pool. `scope` None: all its scopes."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # the parsed JSON; None for an empty body


class Written[T](NamedTuple):
    resource: T
    created: bool  # False: it existed (replaced, or the same order sent again)


class _Page[I](Protocol):
    @property
    def items(self) -> list[I]: ...
    @property
    def next_cursor(self) -> str | None: ...


@dataclass
class _Token:
    value: str
    expires_at: float


class Client:
    """Thread-safe: one client can serve many threads (one kept connection each)."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials,
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = f"fundrouter-client/{VERSION}",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.credentials = credentials
        self.transport: Transport = transport or KeepAlive()
        self.timeout = timeout
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.clock = clock
        self.user_agent = user_agent
        # Requests sent and retries among them; both keys from the start, so a thread
        # reading the counts never sees the dict change size.
        self.stats: Counter[str] = Counter(requests=0, retries=0)
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._jitter = random.Random()  # backoff only  # noqa: S311

    def __repr__(self) -> str:
        return f"Client({self.api_url!r}, client_id={self.credentials.client_id!r})"

    # ------------------------------------------------------------------ tokens
    def token(self) -> str:
        """A current access token: the cached one until shortly before it expires."""
        with self._token_lock:
            if self._token is None or self._token.expires_at <= self.clock():
                self._token = self._fetch_token()
            return self._token.value

    def forget_token(self, value: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch_token(self) -> _Token:
        who = self.credentials
        basic = base64.b64encode(f"{who.client_id}:{who.client_secret}".encode()).decode()
        form = {"grant_type": "client_credentials"} | ({"scope": who.scope} if who.scope else {})
        headers = {
            "authorization": f"Basic {basic}",
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
            "user-agent": self.user_agent,
        }
        data = urllib.parse.urlencode(form).encode()
        for attempt in range(self.retries + 1):
            reply = self._send("token", "POST", who.token_url, data, headers)
            if reply.status not in RETRY_STATUSES or attempt == self.retries:
                break
            self._backoff(attempt, reply.retry_after)
        body = _json_or_none(reply.body)
        if reply.status == 200 and isinstance(body, dict) and body.get("access_token"):
            lifetime = float(body.get("expires_in") or 3600)
            expires = self.clock() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
            return _Token(str(body["access_token"]), expires)
        error = body.get("error") if isinstance(body, dict) else None
        described = body.get("error_description") if isinstance(body, dict) else None
        raise TokenError(
            reply.status,
            str(error) if error else None,
            str(described) if described else None,
            reply.body,
        )

    # ------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | None] | None = None,
        *,
        idempotent: bool = True,
    ) -> Response:
        """One call of the API (JSON in, JSON out, retried as the module says): a 2xx
        answer, or an ApiError with what the server said. `idempotent` False: sent
        again only when the first cannot have been done."""
        url = self.api_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        refreshed = False
        attempt = 0
        while True:
            token = self.token()
            headers = {
                "authorization": f"Bearer {token}",
                "accept": "application/json",
                "user-agent": self.user_agent,
            }
            if data is not None:
                headers["content-type"] = "application/json"
            reply = self._send("api", method, url, data, headers, idempotent=idempotent)
            parsed = _json_or_none(reply.body)
            if reply.status == 401 and not refreshed:
                # The token may have expired early (or been revoked): one fresh token.
                self.forget_token(token)
                refreshed = True
                continue
            if attempt < self.retries and _retryable(reply.status, parsed, idempotent):
                self._backoff(attempt, reply.retry_after)
                attempt += 1
                continue
            if 200 <= reply.status < 300:
                if reply.body and parsed is None:
                    kind = reply.content_type or "without a type"
                    raise _error(
                        method,
                        path,
                        reply,
                        parsed,
                        code="not_json",
                        message=f"answered {kind}, not JSON",
                    )
                return Response(reply.status, parsed)
            raise _error(method, path, reply, parsed)

    def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
        *,
        idempotent: bool = True,
    ) -> Reply:
        """One exchange, sent again when the connection was refused or (`idempotent`)
        broke."""
        for attempt in range(self.retries + 1):
            try:
                self._count("requests")
                return self.transport(method, url, data, headers, self.timeout)
            except TransportError as error:
                again = error.retryable and (idempotent or not error.sent)
                if not again or attempt == self.retries:
                    raise Unreachable(
                        "token" if endpoint == "token" else "api", url, error.reason
                    ) from None
                self._backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int, retry_after: str | None = None) -> None:
        self._count("retries")
        asked = retry_after_seconds(retry_after, time.time())
        if asked is not None:
            self.sleep(min(asked, self.max_retry_after))
            return
        self.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + self._jitter.random()))

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def _typed[M: BaseModel](self, model: type[M], method: str, path: str, answer: Response) -> M:
        try:
            return model.model_validate(answer.body)
        except ValidationError as error:
            reply = Reply(answer.status, json.dumps(answer.body).encode(), "application/json")
            raise _error(
                method, path, reply, answer.body, code="unexpected_answer", message=str(error)
            ) from None

    # ------------------------------------------------------------------ lines
    @operation("GET", "/v1/lines")
    def list_lines(self) -> list[LineResource]:
        """Every line, by lineId (one answer: the route is not paged)."""
        answer = self.request("GET", "/v1/lines")
        return self._typed(LineList, "GET", "/v1/lines", answer).items

    @operation("GET", "/v1/lines/{lineId}")
    def get_line(self, line_id: str) -> LineResource:
        path = f"/v1/lines/{_quote(line_id)}"
        return self._typed(LineResource, "GET", path, self.request("GET", path))

    @operation("PUT", "/v1/lines/{lineId}")
    def put_line(self, line_id: str, config: LineConfig) -> Written[LineResource]:
        path = f"/v1/lines/{_quote(line_id)}"
        answer = self.request("PUT", path, config.to_json())
        return Written(self._typed(LineResource, "PUT", path, answer), answer.status == 201)

    @operation("PATCH", "/v1/lines/{lineId}")
    def patch_line(self, line_id: str, changes: LinePatch) -> LineResource:
        path = f"/v1/lines/{_quote(line_id)}"
        return self._typed(
            LineResource, "PATCH", path, self.request("PATCH", path, changes.to_json())
        )

    # ------------------------------------------------------------------ orders
    @operation("POST", "/v1/orders")
    def submit_order(self, order: OrderRequest) -> Written[OrderResource]:
        answer = self.request("POST", "/v1/orders", order.to_json())
        return Written(
            self._typed(OrderResource, "POST", "/v1/orders", answer), answer.status == 202
        )

    @operation("GET", "/v1/orders/{orderId}")
    def get_order(self, order_id: str, *, tenant_id: str | None = None) -> OrderResource:
        """`tenant_id`: admin callers only, whose order to read."""
        path = f"/v1/orders/{_quote(order_id)}"
        answer = self.request("GET", path, query={"tenantId": tenant_id})
        return self._typed(OrderResource, "GET", path, answer)

    @operation("GET", "/v1/orders")
    def list_orders(
        self,
        *,
        status: OrderStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> OrderPage:
        """One page of the tenant's orders, newest first."""
        query = {"status": status, "limit": limit, "cursor": cursor, "tenantId": tenant_id}
        answer = self.request("GET", "/v1/orders", query=query)
        return self._typed(OrderPage, "GET", "/v1/orders", answer)

    def iter_orders(
        self,
        *,
        status: OrderStatus | None = None,
        tenant_id: str | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> Iterator[OrderResource]:
        """Every order (or `max_pages` pages of them), newest first, page by page."""
        return _follow(
            lambda cursor: self.list_orders(
                status=status, limit=page_size, cursor=cursor, tenant_id=tenant_id
            ),
            max_pages,
        )

    @operation("POST", "/v1/orders/{orderId}/events")
    def post_order_event(self, order_id: str, event: OrderEvent) -> OrderResource:
        path = f"/v1/orders/{_quote(order_id)}/events"
        return self._typed(OrderResource, "POST", path, self.request("POST", path, event.to_json()))

    @operation("GET", "/v1/orders/{orderId}/history")
    def get_order_history(
        self,
        order_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> HistoryPage:
        """One page of the order's history, oldest first."""
        path = f"/v1/orders/{_quote(order_id)}/history"
        query = {"limit": limit, "cursor": cursor, "tenantId": tenant_id}
        return self._typed(HistoryPage, "GET", path, self.request("GET", path, query=query))

    def iter_order_history(
        self, order_id: str, *, tenant_id: str | None = None, page_size: int = 100
    ) -> Iterator[HistoryEntry]:
        """Every entry of the order's history, oldest first, page by page."""
        return _follow(
            lambda cursor: self.get_order_history(
                order_id, limit=page_size, cursor=cursor, tenant_id=tenant_id
            ),
            None,
        )

    # ------------------------------------------------------------------ routing
    @operation("GET", "/v1/tenants/{tenantId}/routing")
    def get_routing(self, tenant_id: str) -> RoutingResource:
        path = f"/v1/tenants/{_quote(tenant_id)}/routing"
        return self._typed(RoutingResource, "GET", path, self.request("GET", path))

    @operation("PUT", "/v1/tenants/{tenantId}/routing")
    def put_routing(self, tenant_id: str, policy: RoutingPolicy) -> RoutingResource:
        path = f"/v1/tenants/{_quote(tenant_id)}/routing"
        answer = self.request("PUT", path, policy.to_json())
        return self._typed(RoutingResource, "PUT", path, answer)

    # ------------------------------------------------------------------ tenants
    @operation("POST", "/v1/tenants")
    def create_tenant(self, tenant: TenantRequest) -> TenantCredentials:
        """A new tenant and its client's secret, which no later answer shows."""
        answer = self.request("POST", "/v1/tenants", tenant.to_json(), idempotent=False)
        return self._typed(TenantCredentials, "POST", "/v1/tenants", answer)

    @operation("GET", "/v1/tenants")
    def list_tenants(self, *, limit: int | None = None, cursor: str | None = None) -> TenantPage:
        """One page of the self-service tenants, in no set order."""
        answer = self.request("GET", "/v1/tenants", query={"limit": limit, "cursor": cursor})
        return self._typed(TenantPage, "GET", "/v1/tenants", answer)

    def iter_tenants(
        self, *, page_size: int = 100, max_pages: int | None = None
    ) -> Iterator[TenantResource]:
        """Every self-service tenant (or `max_pages` pages of them), page by page."""
        return _follow(lambda cursor: self.list_tenants(limit=page_size, cursor=cursor), max_pages)

    @operation("GET", "/v1/tenants/{tenantId}")
    def get_tenant(self, tenant_id: str) -> TenantResource:
        path = f"/v1/tenants/{_quote(tenant_id)}"
        return self._typed(TenantResource, "GET", path, self.request("GET", path))

    @operation("PATCH", "/v1/tenants/{tenantId}")
    def patch_tenant(self, tenant_id: str, changes: TenantPatch) -> TenantResource:
        path = f"/v1/tenants/{_quote(tenant_id)}"
        answer = self.request("PATCH", path, changes.to_json())
        return self._typed(TenantResource, "PATCH", path, answer)

    @operation("POST", "/v1/tenants/{tenantId}/secrets")
    def rotate_tenant_secret(
        self, tenant_id: str, *, grace_seconds: int | None = None
    ) -> TenantCredentials:
        """A new client and secret acting as the tenant, shown only here; the current
        client keeps working for `grace_seconds` (None: the server's default, an hour).
        Not sent twice: a second rotation would retire the new client's predecessor
        at once."""
        path = f"/v1/tenants/{_quote(tenant_id)}/secrets"
        body = {} if grace_seconds is None else {"graceSeconds": grace_seconds}
        answer = self.request("POST", path, body, idempotent=False)
        return self._typed(TenantCredentials, "POST", path, answer)

    @operation("POST", "/v1/tenants/{tenantId}/suspend")
    def suspend_tenant(self, tenant_id: str) -> TenantResource:
        """Every call of the tenant is refused (403 `tenant_suspended`) from the next on."""
        path = f"/v1/tenants/{_quote(tenant_id)}/suspend"
        return self._typed(TenantResource, "POST", path, self.request("POST", path))

    @operation("POST", "/v1/tenants/{tenantId}/resume")
    def resume_tenant(self, tenant_id: str) -> TenantResource:
        path = f"/v1/tenants/{_quote(tenant_id)}/resume"
        return self._typed(TenantResource, "POST", path, self.request("POST", path))

    # ------------------------------------------------------------------ admin
    @operation("POST", "/v1/admin/status-events/republish")
    def republish_status_events(self, limit: int | None = None) -> RepublishReport:
        path = "/v1/admin/status-events/republish"
        answer = self.request("POST", path, {} if limit is None else {"limit": limit})
        return self._typed(RepublishReport, "POST", path, answer)

    @operation("GET", "/v1/audit")
    def audit(self) -> AuditReport:
        return self._typed(AuditReport, "GET", "/v1/audit", self.request("GET", "/v1/audit"))

    # ------------------------------------------------------------------ webhooks
    @operation("POST", "/v1/webhooks")
    def create_webhook(self, endpoint: EndpointRequest) -> EndpointCreated:
        """A new endpoint and its signing secret, which no later answer shows."""
        answer = self.request("POST", "/v1/webhooks", endpoint.to_json(), idempotent=False)
        return self._typed(EndpointCreated, "POST", "/v1/webhooks", answer)

    @operation("GET", "/v1/webhooks")
    def list_webhooks(self) -> list[EndpointResource]:
        """Every endpoint of the tenant, oldest first (one answer: not paged)."""
        answer = self.request("GET", "/v1/webhooks")
        return self._typed(EndpointList, "GET", "/v1/webhooks", answer).items

    @operation("GET", "/v1/webhooks/{endpointId}")
    def get_webhook(self, endpoint_id: str) -> EndpointResource:
        path = f"/v1/webhooks/{_quote(endpoint_id)}"
        return self._typed(EndpointResource, "GET", path, self.request("GET", path))

    @operation("DELETE", "/v1/webhooks/{endpointId}")
    def delete_webhook(self, endpoint_id: str) -> EndpointResource:
        """The endpoint as it was; its pending deliveries are cancelled. (Sent again
        after a lost answer, it is 404 `webhook_not_found`: already deleted.)"""
        path = f"/v1/webhooks/{_quote(endpoint_id)}"
        return self._typed(EndpointResource, "DELETE", path, self.request("DELETE", path))

    @operation("POST", "/v1/webhooks/{endpointId}/secret/rotate")
    def rotate_webhook_secret(
        self, endpoint_id: str, *, grace_seconds: int | None = None
    ) -> EndpointCreated:
        """A new secret, shown only here; the old one signs beside it for
        `grace_seconds` (None: the server's default, a day)."""
        path = f"/v1/webhooks/{_quote(endpoint_id)}/secret/rotate"
        body = {} if grace_seconds is None else {"graceSeconds": grace_seconds}
        return self._typed(EndpointCreated, "POST", path, self.request("POST", path, body))

    @operation("GET", "/v1/webhooks/{endpointId}/deliveries")
    def list_deliveries(
        self,
        endpoint_id: str,
        *,
        state: DeliveryState | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """One page of the endpoint's deliveries, newest event first."""
        path = f"/v1/webhooks/{_quote(endpoint_id)}/deliveries"
        query = {"state": state, "limit": limit, "cursor": cursor}
        return self._typed(DeliveryPage, "GET", path, self.request("GET", path, query=query))

    def iter_deliveries(
        self,
        endpoint_id: str,
        *,
        state: DeliveryState | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> Iterator[DeliveryResource]:
        """Every delivery (or `max_pages` pages of them), newest event first."""
        return _follow(
            lambda cursor: self.list_deliveries(
                endpoint_id, state=state, limit=page_size, cursor=cursor
            ),
            max_pages,
        )

    @operation("GET", "/v1/webhooks/{endpointId}/deliveries/{deliveryId}")
    def get_delivery(self, endpoint_id: str, delivery_id: str) -> DeliveryResource:
        path = f"/v1/webhooks/{_quote(endpoint_id)}/deliveries/{_quote(delivery_id)}"
        return self._typed(DeliveryResource, "GET", path, self.request("GET", path))

    @operation("POST", "/v1/webhooks/{endpointId}/deliveries/{deliveryId}/resend")
    def resend_delivery(self, endpoint_id: str, delivery_id: str) -> DeliveryResource:
        """Due at once with a new day of retries, whatever it ended as (409
        `delivery_busy` while an attempt is under way)."""
        path = f"/v1/webhooks/{_quote(endpoint_id)}/deliveries/{_quote(delivery_id)}/resend"
        return self._typed(DeliveryResource, "POST", path, self.request("POST", path))


def _follow[I](fetch: Callable[[str | None], _Page[I]], max_pages: int | None) -> Iterator[I]:
    cursor: str | None = None
    pages = 0
    while max_pages is None or pages < max_pages:
        page = fetch(cursor)
        pages += 1
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _retryable(status: int, parsed: Any, idempotent: bool) -> bool:
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if status == 429 or (status == 409 and code in RETRY_CODES):
        return True  # throttled or busy: nothing was done
    if status == 503 and code is not None:
        return True  # the API's own 503: it wrote nothing
    return idempotent and status in RETRY_STATUSES  # a gateway's 502-504: it may have


def _error(
    method: str,
    path: str,
    reply: Reply,
    parsed: Any,
    *,
    code: str | None = None,
    message: str | None = None,
) -> ApiError:
    """The API's error shape ({"error": {code, message, fields}}) or the gateway's
    ({"message": ...}), whichever came."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    fields: tuple[FieldProblem, ...] = ()
    if code is None and isinstance(error, dict):
        code = str(error.get("code", "error"))
        message = str(error.get("message", ""))
        fields = tuple(
            FieldProblem(str(f.get("field", "?")), str(f.get("reason", "")))
            for f in error.get("fields") or []
            if isinstance(f, dict)
        )
    if message is None and isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        message = str(parsed["message"])
    return ApiError(
        method,
        path,
        reply.status,
        code=code,
        message=message or _snippet(reply.body) or f"HTTP {reply.status}",
        fields=fields,
        body=parsed,
        raw=reply.body,
        content_type=reply.content_type,
    )


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text[:200] + ("…" if len(text) > 200 else "")
