"""The fundrouter HTTP API as the CLI uses it: the fundrouter-client package's
transport, tokens and retries (clients/python), one OAuth2 client per role, and one
place where every way a request can fail becomes a message a person can act on.

The CLI sends the bodies it was given and shows the JSON the API answered (`--json`
prints it as sent, fields newer than the client's models included), so it calls the
client's JSON layer (`Client.request`) rather than its typed methods.
"""

import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

from fundrouter_client import ApiError as ClientApiError
from fundrouter_client import Client, Credentials, TokenError
from fundrouter_client import Unreachable as ClientUnreachable
from fundrouter_client.transport import KeepAlive, Transport

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

DEFAULT_RETRIES: Final = 4
STACK_HINT: Final = (
    "Is the stack running? `make up` starts the local one; for a deployed stack check "
    "--api-url/--token-url (FUNDROUTER_API_URL, FUNDROUTER_TOKEN_URL)."
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


@dataclass(eq=False, repr=False)  # repr=False: the settings hold the client secrets
class ApiClient:
    """Thread-safe: load and demo share one client across worker threads."""

    settings: Settings
    _: KW_ONLY
    timeout: float = 30.0
    transport: Transport = field(default_factory=KeepAlive)  # shared by both roles
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    retries: int = DEFAULT_RETRIES
    _clients: dict[Role, Client] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def stats(self) -> Counter[str]:
        """Requests sent and retries among them, both roles (tokens included)."""
        with self._lock:
            return sum((client.stats for client in self._clients.values()), Counter())

    def client(self, role: Role) -> Client:
        """The role's fundrouter-client Client (settings problems surface here)."""
        with self._lock:
            if role not in self._clients:
                api_url = self.settings.api_url
                credentials = self.settings.credentials(role)
                self._clients[role] = Client(
                    api_url,
                    Credentials(
                        self.settings.token_url,
                        credentials.client_id,
                        credentials.secret,
                        role.scope,
                    ),
                    transport=self.transport,
                    timeout=self.timeout,
                    retries=self.retries,
                    sleep=self.sleep,
                    clock=self.clock,
                    user_agent=f"fundrouter-cli/{__version__}",
                )
            return self._clients[role]

    def call(
        self,
        role: Role,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | None] | None = None,
    ) -> Answer:
        """One API call as `role`; a 2xx answer, or a CliError saying what went wrong."""
        client = self.client(role)
        try:
            answer = client.request(method, path, body, query)
        except ClientUnreachable as error:
            what = "the token endpoint" if error.endpoint == "token" else "the API"
            where = urllib.parse.urlsplit(error.url).netloc
            raise Unreachable(
                f"cannot reach {what} at {where}: {error.reason}", STACK_HINT
            ) from None
        except TokenError as error:
            raise self._token_failure(role, error) from None
        except ClientApiError as error:
            raise self._failure(role, error) from None
        return Answer(answer.status, answer.body)

    def _token_failure(self, role: Role, error: TokenError) -> CliError:
        who = f"the {role.lower()} client"
        names = f"FUNDROUTER_{role}_CLIENT_ID and FUNDROUTER_{role}_CLIENT_SECRET"
        source = self.settings.sources.get(f"FUNDROUTER_{role}_CLIENT_ID", "?")
        code, described = error.error, error.description
        if code in {"invalid_client", "unauthorized_client"} or error.status == 401:
            return AuthError(
                f"the token endpoint refused {who}'s credentials ({code or error.status}"
                + (f": {described}" if described else "")
                + ")",
                f"check {names} (from {source}); a redeployed local stack has new ones: "
                "rerun `make up` and use its .fundrouter/local.env",
            )
        if code in {"invalid_scope", "invalid_grant"}:
            return AuthError(
                f"the token endpoint refused {who} the scope {role.scope!r} ({described or code})",
                f"are {names} the {role.lower()} client's? The tenant client has the scopes"
                f" {Role.TENANT.scope!r}, the admin client {Role.ADMIN.scope!r}",
            )
        if error.status == 404:
            return ConfigError(
                f"no token endpoint at {self.settings.token_url} (404)",
                "check --token-url (FUNDROUTER_TOKEN_URL)",
            )
        return ApiError(
            error.status,
            code or "token_error",
            described or _snippet(error.raw) or "the token endpoint refused the request",
        )

    def _failure(self, role: Role, error: ClientApiError) -> CliError:
        method, path = error.method, error.path
        if error.code == "not_json":
            return ApiError(
                error.status,
                "not_json",
                f"{method} {path} {error.message}",
                hint="is --api-url (FUNDROUTER_API_URL) the fundrouter API?",
            )
        if error.status == 401:
            return AuthError(
                f"the API refused the {role.lower()} client's token (401)",
                "the token URL and the API URL may belong to different stacks: check "
                "FUNDROUTER_TOKEN_URL and FUNDROUTER_API_URL",
            )
        if error.status == 403:
            other = Role.ADMIN if role is Role.TENANT else Role.TENANT
            return AuthError(
                f"the {role.lower()} client may not {method} {path} (403: {error.message})",
                f"this needs the {other.lower()} client's scope ({other.scope})",
            )
        if error.code is not None:
            fields = [FieldProblem(f.field, f.reason) for f in error.fields]
            return ApiError(error.status, error.code, error.message, fields)
        if error.status == 404:
            return RouteMissing(
                f"no route for {method} {path} at {self.settings.api_url} (404"
                f" {error.message if error.raw else 'not found'})",
                "either --api-url (FUNDROUTER_API_URL) is wrong (a redeployed local stack has a"
                " new API id: `make up` rewrites .fundrouter/local.env), or the stack was"
                " deployed from an older template without this route (rerun `make up`)",
            )
        return ApiError(error.status, "http_error", error.message)

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


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text[:200] + ("…" if len(text) > 200 else "")


def _dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(200, "unexpected_answer", f"expected a JSON object, got {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
