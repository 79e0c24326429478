"""Who is calling, from the claims the HTTP API's JWT authorizer verified.

The gateway already refuses missing or bad tokens and missing scopes; checking again
here keeps the function safe when invoked another way (a misconfigured route,
``sam local invoke``) and makes the tenant come only from the token.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Scope(StrEnum):
    ORDERS_WRITE = "fundrouter/orders.write"
    ORDERS_READ = "fundrouter/orders.read"
    LINES_ADMIN = "fundrouter/lines.admin"


_READ: Final = (Scope.ORDERS_READ, Scope.LINES_ADMIN)
_ADMIN: Final = (Scope.LINES_ADMIN,)
# The scopes each route accepts (any one of them), by the HTTP API's route key: the one
# table the function's check, the OpenAPI document and the template's test all read.
ROUTE_SCOPES: Final[Mapping[str, tuple[Scope, ...]]] = {
    "POST /v1/orders": (Scope.ORDERS_WRITE,),
    "POST /v1/orders/{orderId}/events": (Scope.ORDERS_WRITE,),
    "GET /v1/orders": _READ,
    "GET /v1/orders/{orderId}": _READ,
    "GET /v1/orders/{orderId}/history": _READ,
    "PUT /v1/lines/{lineId}": _ADMIN,
    "PATCH /v1/lines/{lineId}": _ADMIN,
    "GET /v1/lines/{lineId}": _ADMIN,
    "GET /v1/lines": _ADMIN,
    "PUT /v1/tenants/{tenantId}/routing": _ADMIN,
    "GET /v1/tenants/{tenantId}/routing": _ADMIN,
    "POST /v1/admin/status-events/republish": _ADMIN,
    "GET /v1/audit": _ADMIN,
    "POST /v1/webhooks": (Scope.ORDERS_WRITE,),
    "GET /v1/webhooks": (Scope.ORDERS_READ,),
    "GET /v1/webhooks/{endpointId}": (Scope.ORDERS_READ,),
    "DELETE /v1/webhooks/{endpointId}": (Scope.ORDERS_WRITE,),
    "POST /v1/webhooks/{endpointId}/secret/rotate": (Scope.ORDERS_WRITE,),
    "GET /v1/webhooks/{endpointId}/deliveries": (Scope.ORDERS_READ,),
    "GET /v1/webhooks/{endpointId}/deliveries/{deliveryId}": (Scope.ORDERS_READ,),
    "POST /v1/webhooks/{endpointId}/deliveries/{deliveryId}/resend": (Scope.ORDERS_WRITE,),
    "POST /v1/tenants": _ADMIN,
    "GET /v1/tenants": _ADMIN,
    "GET /v1/tenants/{tenantId}": _ADMIN,
    "PATCH /v1/tenants/{tenantId}": _ADMIN,
    "POST /v1/tenants/{tenantId}/secrets": _ADMIN,
    "POST /v1/tenants/{tenantId}/suspend": _ADMIN,
    "POST /v1/tenants/{tenantId}/resume": _ADMIN,
}
# The scopes a self-service tenant may hold. A route that accepts one of them is open
# at the gateway, whose JWT authorizer knows only the template's clients, and its
# token verified by the function (decision 30); the others stay behind the authorizer.
TENANT_SCOPES: Final = frozenset({Scope.ORDERS_WRITE, Scope.ORDERS_READ})


def verified_by_the_function(route_key: str) -> bool:
    scopes = ROUTE_SCOPES.get(route_key)
    return scopes is None or not TENANT_SCOPES.isdisjoint(scopes)  # $default: any token


class Unauthenticated(Exception):
    """No verified token on the request."""


class Forbidden(Exception):
    def __init__(self, needed: tuple[Scope, ...]) -> None:
        super().__init__("token lacks scope " + " or ".join(needed))


@dataclass(frozen=True)
class Caller:
    client_id: str
    scopes: frozenset[str]

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None) -> "Caller":
        client_id = (claims or {}).get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise Unauthenticated
        scope = (claims or {}).get("scope", "")
        return cls(client_id, frozenset(str(scope).split()))

    def require(self, *any_of: Scope) -> None:
        if not self.scopes.intersection(any_of):
            raise Forbidden(any_of)

    @property
    def is_admin(self) -> bool:
        return Scope.LINES_ADMIN in self.scopes
