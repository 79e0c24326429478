"""Who is calling, from the claims the HTTP API's JWT authorizer verified.

The gateway already refuses missing or bad tokens and missing scopes; checking again
here keeps the function safe when invoked another way (a misconfigured route,
``sam local invoke``) and makes the tenant come only from the token.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Scope(StrEnum):
    ORDERS_WRITE = "fundrouter/orders.write"
    ORDERS_READ = "fundrouter/orders.read"
    LINES_ADMIN = "fundrouter/lines.admin"


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
