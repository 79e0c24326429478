"""The DynamoDB calls every adapter shares, retried the way AWS asks: one
``TransactWriteItems`` runner, one ``TransactGetItems``, one ``BatchGetItem`` that
reads every key, and `read` for any other idempotent read.

Contention (a ``TransactionConflict`` cancellation reason, or the exception of that
name), throttling and internal errors are retried with full-jitter exponential
backoff, and so are reads whose connection failed; what outlasts the retries
becomes a domain error (``Contended`` or ``Unavailable``), so no caller ever sees
a raw ClientError for a fault that is only for now. A write is sent again only after
a refusal (a cancelled transaction wrote nothing); one whose answer was lost is left
to the caller's retry, which finds it by its own conditions.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from fundrouter.domain.errors import Contended, Unavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONDITION_FAILED: Final = "ConditionalCheckFailed"
# Cancellation reason codes that say "not now" rather than "no".
CONFLICT_REASONS: Final = frozenset({"TransactionConflict"})
THROTTLE_REASONS: Final = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
# Error codes of the call itself.
CONFLICT_ERRORS: Final = frozenset({"TransactionConflictException"})
UNAVAILABLE_ERRORS: Final = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
BATCH_GET_KEYS: Final = 100


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniform(0, min(cap, base * 2^n)).
    Tests inject `sleep`; the worst case of the defaults is 0.35 s of waiting."""

    attempts: int = 4
    base_seconds: float = 0.05
    cap_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def pause(self, attempt: int) -> None:
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempt)
        self.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not secrecy


DEFAULT_BACKOFF: Final = Backoff()


def reason_codes(error: ClientError, count: int) -> list[str | None]:
    """One code per transaction item, read defensively: a missing or short list, or a
    reason without a code, reads as None for the items it leaves out."""
    reasons = error.response.get("CancellationReasons") or []
    codes = [r.get("Code") if isinstance(r, dict) else None for r in reasons]
    return (codes + [None] * count)[:count]


def _reasons(error: ClientError, count: int) -> list[dict[str, Any]]:
    reasons = error.response.get("CancellationReasons") or []
    padded = [dict(r) if isinstance(r, dict) else {} for r in reasons]
    return (padded + [{} for _ in range(count)])[:count]


def _transient(error: ClientError, count: int) -> type[Unavailable] | None:
    """Contended or Unavailable when the refusal is only for now; None otherwise."""
    code = error.response.get("Error", {}).get("Code", "")
    if code in CONFLICT_ERRORS:
        return Contended
    if code in UNAVAILABLE_ERRORS:
        return Unavailable
    if code == "TransactionCanceledException":
        codes = set(reason_codes(error, count))
        if codes & CONFLICT_REASONS:
            return Contended
        if codes & THROTTLE_REASONS:
            return Unavailable
    return None


def _fault(count: int, *, read: bool) -> Callable[[Exception], type[Unavailable] | None]:
    """What of an error is only for now. A read may be sent again whatever became of
    the first one; a write only after a refusal, since after a dropped connection it
    may have committed (the caller's own retry finds that by the write's conditions)."""

    def fault(error: Exception) -> type[Unavailable] | None:
        if read and isinstance(error, (ConnectionError, HTTPClientError)):
            return Unavailable
        return _transient(error, count) if isinstance(error, ClientError) else None

    return fault


def _retried[T](
    call: Callable[[], T],
    fault: Callable[[Exception], type[Unavailable] | None],
    backoff: Backoff,
) -> T:
    """`call` until it answers; what `fault` names is tried again after a pause, and
    raised as that domain error once the attempts are spent."""
    for attempt in range(backoff.attempts):
        try:
            return call()
        except Exception as error:
            kind = fault(error)
            if kind is None:
                raise
            if attempt == backoff.attempts - 1:
                raise kind() from error
        backoff.pause(attempt)
    raise Unavailable()  # pragma: no cover - attempts >= 1


def transact(
    client: "DynamoDBClient",
    items: list[dict[str, Any]],
    backoff: Backoff = DEFAULT_BACKOFF,
) -> list[dict[str, Any]]:
    """Run one transaction. Returns [] when it committed, or the cancellation reasons
    (exactly one per item, in order; {} where DynamoDB gave none) when a condition
    refused it. Raises Contended or Unavailable when contention or throttling
    outlasted the retries, and any other error as it came."""

    def once() -> list[dict[str, Any]]:
        try:
            client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            if CONDITION_FAILED in reason_codes(error, len(items)):
                return _reasons(error, len(items))
            raise
        return []

    return _retried(once, _fault(len(items), read=False), backoff)


def transact_get(
    client: "DynamoDBClient",
    items: list[dict[str, Any]],
    backoff: Backoff = DEFAULT_BACKOFF,
) -> list[dict[str, Any] | None]:
    """Read `items` at one point: one item (or None where it does not exist) per key,
    in order. A read cancelled by a write in flight on one of them, throttled or cut
    off is retried; Contended or Unavailable after that."""

    def once() -> list[dict[str, Any] | None]:
        response = client.transact_get_items(TransactItems=items)  # type: ignore[arg-type]
        return [dict(r["Item"]) if "Item" in r else None for r in response["Responses"]]

    return _retried(once, _fault(len(items), read=True), backoff)


def read[T](call: Callable[[], T], backoff: Backoff = DEFAULT_BACKOFF) -> T:
    """One idempotent read (a Query, a GetItem), retried through throttling, internal
    errors and dropped connections; Unavailable after that."""
    return _retried(call, _fault(0, read=True), backoff)


def batch_get(
    client: "DynamoDBClient",
    table: str,
    keys: list[dict[str, Any]],
    backoff: Backoff = DEFAULT_BACKOFF,
) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, read consistently. Keys DynamoDB leaves
    unprocessed (it may, under load, at any size) are asked for again after a
    jittered pause; still unread after the retries, it raises Unavailable rather
    than answer as if they did not exist."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        pending: list[dict[str, Any]] = keys[start : start + BATCH_GET_KEYS]
        for attempt in range(backoff.attempts):
            request: dict[str, Any] = {table: {"Keys": pending, "ConsistentRead": True}}
            response = read(partial(client.batch_get_item, RequestItems=request), backoff)
            items += response["Responses"].get(table, [])
            unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys") or {})
            pending = list(unprocessed.get(table, {}).get("Keys", []))
            if not pending:
                break
            if attempt == backoff.attempts - 1:
                raise Unavailable(f"{len(pending)} keys of {table} left unread")
            backoff.pause(attempt)
    return items


def transient(error: BaseException) -> bool:
    """An error that says AWS is failing for now, not that the request or the code is
    wrong: throttling, internal errors and contention past botocore's own retries, a
    connection that failed or dropped, a read that timed out. The caller answers 503
    with Retry-After; a write whose answer was lost is found by its own condition (or
    id) when the client sends the same request again."""
    if isinstance(error, (Unavailable, ConnectionError, HTTPClientError)):
        return True
    return isinstance(error, ClientError) and _transient(error, 0) is not None
