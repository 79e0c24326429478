"""The matcher's writes: an order and its line's capacity move in one transaction.

A claim is one ``TransactWriteItems`` of three writes: the line's counters (only if
its configuration is the one ranked, it is ACTIVE, inside its window and has room),
the day's usage (only if under the daily cap), and the order (only if still RECEIVED
at the version read). The cancellation reasons tell the three refusals apart.
"""

import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from fundrouter.domain.lifecycle import matched, unmatched
from fundrouter.domain.lines import LineRecord, LineRefusal
from fundrouter.domain.orders import Decision, Order, OrderStatus
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import order_item
from fundrouter.service.ports import ClaimAttempt, ClaimResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Contention and throttling are retried a few times with jittered backoff; past that
# the stream record is reported failed and redelivered.
TRANSIENT_CODES: Final = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
TRANSIENT_ERRORS: Final = frozenset(
    {
        "TransactionConflictException",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
    }
)


class StillContended(Exception):
    """Contention or throttling outlasted the retries: let the stream redeliver."""


class DynamoMatchStore:
    def __init__(
        self,
        client: "DynamoDBClient",
        orders_table: str,
        lines: DynamoLineRepository,
        *,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._orders = orders_table
        self._lines = lines
        self._attempts = attempts
        self._sleep = sleep

    def claim(
        self,
        order: Order,
        record: LineRecord,
        now: datetime,
        hold_expires_at: datetime,
        decision: Decision,
    ) -> ClaimAttempt:
        line = record.line
        day = line.day_of(now)
        try:
            items = self._lines.claim_items(record, order.amount, now)
        except LineRefusal as too_big:
            # An amount no usage could make fit (above the daily cap itself).
            return ClaimAttempt(ClaimResult.LINE_REFUSED, too_big)
        after = matched(
            order,
            line_id=line.line_id,
            funder_id=line.config.funder_id,
            now=now,
            hold_expires_at=hold_expires_at,
            claim_day=day,
            decision=decision,
        )
        items.append(self._replace(order, after))
        reasons = self._transact(items)
        if not reasons:
            return ClaimAttempt(ClaimResult.CLAIMED)
        if reasons[2].get("Code") == "ConditionalCheckFailed":
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        refusal = self._lines.explain_claim(record, order.amount, order.currency, now, reasons)
        return ClaimAttempt(ClaimResult.LINE_REFUSED, refusal)

    def mark_unmatched(self, order: Order, now: datetime, decision: Decision) -> bool:
        """False when the order had already moved on (another delivery decided)."""
        return not self._transact([self._replace(order, unmatched(order, now, decision))])

    def _replace(self, before: Order, after: Order) -> dict[str, Any]:
        """The order's move out of RECEIVED, only from the version that was read. The
        whole item is written, so every derived key comes from order_item alone."""
        return {
            "Put": {
                "TableName": self._orders,
                "Item": order_item(after),
                "ConditionExpression": "#status = :received AND version = :version",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":received": {"S": OrderStatus.RECEIVED.value},
                    ":version": {"N": str(before.version)},
                },
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """[] when committed; the cancellation reasons when a condition refused it.
        Contention and throttling are retried with full-jitter backoff."""
        for attempt in range(self._attempts):
            try:
                self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            except ClientError as error:
                code = error.response["Error"]["Code"]
                reasons = [dict(r) for r in error.response.get("CancellationReasons", [])]
                if code == "TransactionCanceledException" and any(
                    r.get("Code") == "ConditionalCheckFailed" for r in reasons
                ):
                    return reasons
                transient = code in TRANSIENT_ERRORS or (
                    code == "TransactionCanceledException"
                    and any(r.get("Code") in TRANSIENT_CODES for r in reasons)
                )
                if not transient:
                    raise
                if attempt == self._attempts - 1:
                    raise StillContended(code) from error
                self._sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter
                continue
            return []
        raise StillContended("no attempts")  # pragma: no cover - attempts >= 1
