"""Domain errors. Each names what was refused and why; the HTTP edge maps them to
status codes in one place (fundrouter.http.app, DOMAIN_STATUS)."""

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


class DomainError(Exception):
    """An expected refusal, never a bug: logged as info, answered with a 4xx."""

    code = "domain_error"

    def __init__(self, message: str, fields: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class NotFound(DomainError):
    """No such resource (or another tenant's): `what` names its kind in the message."""

    what = "resource"

    def __init__(self, key: str) -> None:
        super().__init__(f"{self.what} {key} not found")


class OrderNotFound(NotFound):
    code = "order_not_found"
    what = "order"


class OrderConflict(DomainError):
    """The tenant already sent this orderId with different content."""

    code = "order_conflict"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} already exists with different content",
            (FieldProblem("orderId", "already used for an order with different content"),),
        )
        self.order_id = order_id


class InvalidCursor(DomainError):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__(
            "cursor is not one this API returned for this listing",
            (FieldProblem("cursor", "not a cursor returned by this listing"),),
        )


class InvalidInput(DomainError):
    """The caller's fields, valid one by one, fail validation as a whole (a PATCH merged
    into the stored configuration). Other pydantic failures are bugs, not this."""

    code = "validation_failed"

    def __init__(self, error: ValidationError) -> None:
        super().__init__(
            "request failed validation",
            tuple(
                FieldProblem(".".join(str(p) for p in e["loc"]) or "body", reason(dict(e)))
                for e in error.errors()
            ),
        )


def reason(error: dict[str, Any]) -> str:
    """A pydantic error in words a caller can act on."""
    kind = error.get("type", "")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


class Unavailable(Exception):
    """The store kept refusing for now (throttling, internal errors, keys left
    unprocessed) after the retries: nothing was written, try again shortly. Not a
    refusal of the request and not a bug: the API answers 503 with Retry-After."""

    code = "service_unavailable"
    retry_after_seconds = 1

    def __init__(self, message: str = "the service is busy; retry shortly") -> None:
        super().__init__(message)
        self.message = message


class Contended(Unavailable):
    """Concurrent transactions on the same items kept cancelling this one after the
    retries: nothing was written. On an order event the API answers 409 order_busy."""

    code = "order_busy"

    def __init__(self, message: str = "the order is changing concurrently; retry shortly") -> None:
        super().__init__(message)
