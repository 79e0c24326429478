"""The fundrouter HTTP API as the CLI uses it: OAuth2 client-credentials tokens from
the token URL, JSON over HTTP(S) with the standard library, and one place where
every way a request can fail becomes a message a person can act on.

Every call the CLI makes is idempotent (PUT, PATCH of fields, POST of an order whose
orderId is its idempotency key, POST of an event with an eventId), so throttling
(429), a gateway hiccup (502-504), a dropped connection and ``order_busy`` are retried
a few times with backoff; nothing else is.
"""

import base64
import http.client
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

from fundrouter_cli import __version__
from fundrouter_cli.config import Role, Settings
from fundrouter_cli.errors import (
    ApiError,
    AuthError,
    CliError,
    ConfigError,
    FieldProblem,
    RouteMissing,
    Unreachable,
)

RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_CODES: Final = frozenset({"order_busy", "line_config_changed"})
DEFAULT_RETRIES: Final = 4
TOKEN_MARGIN_SECONDS: Final = 30.0
MAX_RETRY_AFTER_SECONDS: Final = 10.0
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
STACK_HINT: Final = (
    "Is the stack running? `make up` starts the local one; for a deployed stack check "
    "--api-url/--token-url (FUNDROUTER_API_URL, FUNDROUTER_TOKEN_URL)."
)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    retry_after: str | None = None  # the Retry-After header, as sent


class TransportError(Exception):
    """No HTTP answer at all. `retryable`: the connection broke rather than was
    refused outright or timed out."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


type Transport = Callable[[str, str, bytes | None, Mapping[str, str], float], Reply]


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    # A local stack is reached directly even when an HTTP proxy is configured.
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def urllib_transport(
    method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
) -> Reply:
    # Only http(s) URLs get here: config.url_problem refuses every other scheme.
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)  # noqa: S310
    try:
        with _opener_for(url).open(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers.get_content_type())
    except urllib.error.HTTPError as error:
        content_type = error.headers.get_content_type() if error.headers else ""
        retry_after = error.headers.get("Retry-After") if error.headers else None
        return Reply(error.code, error.read(), content_type, retry_after)
    except urllib.error.URLError as error:
        raise _transport_error(error.reason, timeout) from error
    except (OSError, http.client.HTTPException) as error:
        raise _transport_error(error, timeout) from error


class KeepAlive:
    """The default transport: one connection per thread and host, kept open between
    requests (urllib opens a new one for each, and on a local stack setting it up costs
    more than the request). Through a configured proxy, urllib's transport is used."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in LOOPBACK and urllib.request.getproxies().get(parts.scheme):
            return urllib_transport(method, url, data, headers, timeout)
        kept: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("kept", {})
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in range(2):
            reused = parts.netloc in kept
            connection = kept.pop(parts.netloc, None) or _connect(parts, timeout)
            try:
                connection.request(method, target, data, dict(headers))
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if reused and attempt == 0 and not isinstance(error, TimeoutError):
                    continue  # the server closed the kept connection meanwhile: a new one
                raise _transport_error(error, timeout) from error
            if not response.will_close:
                kept[parts.netloc] = connection
            content_type = response.headers.get_content_type()
            return Reply(response.status, body, content_type, response.headers.get("Retry-After"))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _connect(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname or "", parts.port, timeout=timeout)


def _transport_error(reason: object, timeout: float) -> TransportError:
    match reason:
        case ConnectionRefusedError():
            return TransportError("connection refused", retryable=True)
        case TimeoutError():
            return TransportError(f"no answer within {timeout:g} s", retryable=False)
        case socket.gaierror():
            return TransportError("unknown host name", retryable=False)
        case (
            ConnectionResetError()
            | ConnectionAbortedError()
            | BrokenPipeError()
            | http.client.RemoteDisconnected()
            | http.client.IncompleteRead()
        ):
            return TransportError(f"connection dropped ({reason})", retryable=True)
        case _:
            return TransportError(str(reason) or type(reason).__name__, retryable=False)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass(eq=False, repr=False)  # repr=False: the settings hold the client secrets
class ApiClient:
    """Thread-safe: load and demo share one client across worker threads."""

    settings: Settings
    _: KW_ONLY
    timeout: float = 30.0
    transport: Transport = field(default_factory=KeepAlive)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    retries: int = DEFAULT_RETRIES
    stats: Counter[str] = field(default_factory=Counter, init=False)
    _tokens: dict[Role, _Token] = field(default_factory=dict, init=False)
    _token_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stats_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _jitter: random.Random = field(default_factory=random.Random, init=False)  # backoff only

    # ------------------------------------------------------------------ tokens
    def token(self, role: Role) -> str:
        with self._token_lock:
            cached = self._tokens.get(role)
            if cached is not None and cached.expires_at > self.clock():
                return cached.value
            fresh = self._fetch_token(role)
            self._tokens[role] = fresh
            return fresh.value

    def _forget_token(self, role: Role, value: str) -> None:
        with self._token_lock:
            cached = self._tokens.get(role)
            if cached is not None and cached.value == value:
                del self._tokens[role]

    def _fetch_token(self, role: Role) -> _Token:
        credentials = self.settings.credentials(role)
        url = self.settings.token_url
        basic = base64.b64encode(f"{credentials.client_id}:{credentials.secret}".encode()).decode()
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": role.scope})
        headers = {
            "authorization": f"Basic {basic}",
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
            "user-agent": f"fundrouter-cli/{__version__}",
        }
        reply = self._send("POST", url, form.encode(), headers, what="the token endpoint")
        body = _json_or_none(reply.body)
        if reply.status == 200 and isinstance(body, dict) and body.get("access_token"):
            lifetime = float(body.get("expires_in") or 3600)
            expires = self.clock() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
            return _Token(str(body["access_token"]), expires)
        raise self._token_failure(role, reply, body)

    def _token_failure(self, role: Role, reply: Reply, body: Any) -> CliError:
        who = f"the {role.lower()} client"
        names = f"FUNDROUTER_{role}_CLIENT_ID and FUNDROUTER_{role}_CLIENT_SECRET"
        source = self.settings.sources.get(f"FUNDROUTER_{role}_CLIENT_ID", "?")
        error = body.get("error") if isinstance(body, dict) else None
        described = body.get("error_description") if isinstance(body, dict) else None
        if error in {"invalid_client", "unauthorized_client"} or reply.status == 401:
            return AuthError(
                f"the token endpoint refused {who}'s credentials ({error or reply.status}"
                + (f": {described}" if described else "")
                + ")",
                f"check {names} (from {source}); a redeployed local stack has new ones: "
                "rerun `make up` and use its .fundrouter/local.env",
            )
        if error in {"invalid_scope", "invalid_grant"}:
            return AuthError(
                f"the token endpoint refused {who} the scope {role.scope!r} ({described or error})",
                f"are {names} the {role.lower()} client's? The tenant client has the scopes"
                f" {Role.TENANT.scope!r}, the admin client {Role.ADMIN.scope!r}",
            )
        if reply.status == 404:
            return ConfigError(
                f"no token endpoint at {self.settings.token_url} (404)",
                "check --token-url (FUNDROUTER_TOKEN_URL)",
            )
        return ApiError(
            reply.status,
            str(error or "token_error"),
            str(described or _snippet(reply.body) or "the token endpoint refused the request"),
        )

    # ------------------------------------------------------------------ requests
    def call(
        self,
        role: Role,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | None] | None = None,
    ) -> Answer:
        """One API call as `role`; a 2xx answer, or a CliError saying what went wrong."""
        url = self.settings.api_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        refreshed = False
        attempt = 0
        while True:
            token = self.token(role)
            headers = {
                "authorization": f"Bearer {token}",
                "accept": "application/json",
                "user-agent": f"fundrouter-cli/{__version__}",
            }
            if data is not None:
                headers["content-type"] = "application/json"
            reply = self._send(method, url, data, headers, what="the API")
            parsed = _json_or_none(reply.body)
            if reply.status == 401 and not refreshed:
                # The token may have expired early: one fresh token, then give up.
                self._forget_token(role, token)
                refreshed = True
                continue
            if attempt < self.retries and _retryable(reply.status, parsed):
                self._count("retries")
                self._backoff(attempt, _seconds(reply.retry_after))
                attempt += 1
                continue
            if 200 <= reply.status < 300:
                if reply.body and parsed is None:
                    raise ApiError(
                        reply.status,
                        "not_json",
                        f"{method} {path} answered {reply.content_type or 'without a type'},"
                        " not JSON",
                        hint="is --api-url (FUNDROUTER_API_URL) the fundrouter API?",
                    )
                return Answer(reply.status, parsed)
            raise self._failure(role, method, path, reply, parsed)

    def _send(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str], *, what: str
    ) -> Reply:
        for attempt in range(self.retries + 1):
            try:
                self._count("requests")
                return self.transport(method, url, data, headers, self.timeout)
            except TransportError as error:
                if error.retryable and attempt < self.retries:
                    self._count("retries")
                    self._backoff(attempt)
                    continue
                where = urllib.parse.urlsplit(url).netloc
                raise Unreachable(
                    f"cannot reach {what} at {where}: {error.reason}", STACK_HINT
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _failure(self, role: Role, method: str, path: str, reply: Reply, parsed: Any) -> CliError:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if reply.status == 401:
            return AuthError(
                f"the API refused the {role.lower()} client's token (401)",
                "the token URL and the API URL may belong to different stacks: check "
                "FUNDROUTER_TOKEN_URL and FUNDROUTER_API_URL",
            )
        if reply.status == 403:
            message = _message(parsed) or "forbidden"
            other = Role.ADMIN if role is Role.TENANT else Role.TENANT
            return AuthError(
                f"the {role.lower()} client may not {method} {path} (403: {message})",
                f"this needs the {other.lower()} client's scope ({other.scope})",
            )
        if isinstance(error, dict):
            fields = [
                FieldProblem(str(f.get("field", "?")), str(f.get("reason", "")))
                for f in error.get("fields") or []
                if isinstance(f, dict)
            ]
            return ApiError(
                reply.status,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                fields,
            )
        if reply.status == 404:
            return RouteMissing(
                f"no route for {method} {path} at {self.settings.api_url} (404"
                f" {_message(parsed) or _snippet(reply.body) or 'not found'})",
                "either --api-url (FUNDROUTER_API_URL) is wrong (a redeployed local stack has a"
                " new API id: `make up` rewrites .fundrouter/local.env), or the stack was"
                " deployed from an older template without this route (rerun `make up`)",
            )
        return ApiError(
            reply.status,
            "http_error",
            _message(parsed) or _snippet(reply.body) or f"HTTP {reply.status}",
        )

    def _backoff(self, attempt: int, asked: float | None = None) -> None:
        # The server's Retry-After, when it gives one (bounded), else jittered doubling.
        if asked is not None:
            self.sleep(min(asked, MAX_RETRY_AFTER_SECONDS))
            return
        self.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + self._jitter.random()))

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    # ------------------------------------------------------------------ routes
    def list_lines(self) -> list[dict[str, Any]]:
        body = self.call(Role.ADMIN, "GET", "/v1/lines").body
        return [item for item in _dict(body).get("items", []) if isinstance(item, dict)]

    def get_line(self, line_id: str) -> dict[str, Any]:
        return _dict(self.call(Role.ADMIN, "GET", f"/v1/lines/{_quote(line_id)}").body)

    def put_line(self, line_id: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        answer = self.call(Role.ADMIN, "PUT", f"/v1/lines/{_quote(line_id)}", dict(config))
        return _dict(answer.body), answer.status == 201

    def patch_line(self, line_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/v1/lines/{_quote(line_id)}"
        return _dict(self.call(Role.ADMIN, "PATCH", path, dict(changes)).body)

    def submit_order(self, order: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        answer = self.call(Role.TENANT, "POST", "/v1/orders", dict(order))
        return _dict(answer.body), answer.status == 202

    def get_order(self, order_id: str, tenant: str | None = None) -> dict[str, Any]:
        role = Role.TENANT if tenant is None else Role.ADMIN
        path = f"/v1/orders/{_quote(order_id)}"
        return _dict(self.call(role, "GET", path, query={"tenantId": tenant}).body)

    def list_orders(
        self,
        *,
        limit: int = 100,
        cursor: str | None = None,
        status: str | None = None,
        tenant: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        role = Role.TENANT if tenant is None else Role.ADMIN
        query: dict[str, str | int | None] = {
            "limit": limit,
            "cursor": cursor,
            "status": status,
            "tenantId": tenant,
        }
        body = _dict(self.call(role, "GET", "/v1/orders", query=query).body)
        items = [item for item in body.get("items", []) if isinstance(item, dict)]
        next_cursor = body.get("nextCursor")
        return items, str(next_cursor) if next_cursor else None

    def iter_orders(
        self,
        *,
        max_pages: int,
        status: str | None = None,
        tenant: str | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """The tenant's orders, newest first, at most `max_pages` pages."""
        cursor: str | None = None
        for _ in range(max_pages):
            items, cursor = self.list_orders(
                limit=page_size, cursor=cursor, status=status, tenant=tenant
            )
            yield from items
            if cursor is None:
                return

    def get_routing(self, tenant: str) -> dict[str, Any]:
        path = f"/v1/tenants/{_quote(tenant)}/routing"
        return _dict(self.call(Role.ADMIN, "GET", path).body)

    def post_event(self, order_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/v1/orders/{_quote(order_id)}/events"
        return _dict(self.call(Role.TENANT, "POST", path, dict(event)).body)

    def republish_status_events(self, limit: int) -> dict[str, Any]:
        """One run of POST /v1/admin/status-events/republish (see api.md)."""
        path = "/v1/admin/status-events/republish"
        return _dict(self.call(Role.ADMIN, "POST", path, {"limit": limit}).body)


def _retryable(status: int, parsed: Any) -> bool:
    if status in RETRY_STATUSES:
        return True
    if status == 409 and isinstance(parsed, dict):
        error = parsed.get("error")
        return isinstance(error, dict) and error.get("code") in RETRY_CODES
    return False


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by the API)."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _message(parsed: Any) -> str | None:
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return None


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text[:200] + ("…" if len(text) > 200 else "")


def _dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(200, "unexpected_answer", f"expected a JSON object, got {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
