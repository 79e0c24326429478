"""The order events bus: OrderStatusChanged published with EventBridge PutEvents.

PutEvents takes at most 10 entries and answers per entry: a call can succeed while
some of its entries were refused (``FailedEntryCount``, an ``ErrorCode`` on each
refused entry, in request order). Refused entries, and those of a call that failed
as a whole, are sent again a few times with full-jitter backoff; what is still
refused is reported back by position, so nothing is dropped silently.

The dead-letter queue holds the identity of each status event that could not be
published (``Unpublished``, JSON), for StatusEventRepublisher.
"""

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from fundrouter.service.tracking import (
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    OrderStatusChanged,
    Unpublished,
)
from fundrouter.settings import EventBusSettings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_ENTRIES_PER_CALL: Final = 10
# Three sends in all, waiting at most 0.1 s then 0.2 s (full jitter): a throttled
# bus gets air, a batch of 100 records stays far inside the function's timeout.
PUBLISH_ATTEMPTS: Final = 3
BACKOFF_BASE_SECONDS: Final = 0.1
# Long enough for a republish run to finish with the letters it holds.
RECEIVE_VISIBILITY_SECONDS: Final = 60
__all__ = [
    "MAX_ENTRIES_PER_CALL",
    "EventBridgePublisher",
    "EventBusSettings",
    "SqsDeadLetters",
]


class EventBridgePublisher:
    """Publishes status changes to one event bus, 10 entries per PutEvents call."""

    def __init__(
        self,
        client: "EventBridgeClient",
        bus_name: str,
        attempts: int = PUBLISH_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._attempts = attempts
        self._sleep = sleep

    def publish(self, changes: Sequence[OrderStatusChanged]) -> dict[int, str]:
        refused: dict[int, str] = {}
        pending = list(range(len(changes)))
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))  # noqa: S311
            refused = self._publish_once([changes[i] for i in pending], pending)
            pending = sorted(refused)
            if not pending:
                break
        return refused

    def _publish_once(
        self, changes: Sequence[OrderStatusChanged], positions: Sequence[int]
    ) -> dict[int, str]:
        refused: dict[int, str] = {}
        for start in range(0, len(changes), MAX_ENTRIES_PER_CALL):
            chunk = changes[start : start + MAX_ENTRIES_PER_CALL]
            refused |= {
                positions[start + offset]: reason for offset, reason in self._put(chunk).items()
            }
        return refused

    def _put(self, chunk: Sequence[OrderStatusChanged]) -> dict[int, str]:
        try:
            response = self._client.put_events(Entries=[self._entry(c) for c in chunk])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            return dict.fromkeys(range(len(chunk)), f"PutEvents failed: {code}")
        except BotoCoreError as error:
            return dict.fromkeys(range(len(chunk)), f"PutEvents failed: {type(error).__name__}")
        # Results come in request order. An entry is published when it has an
        # EventId and no ErrorCode; anything else (FailedEntryCount > 0) is retried.
        results = response.get("Entries", [])
        refused: dict[int, str] = {}
        for position in range(len(chunk)):
            result = results[position] if position < len(results) else {}
            if result.get("ErrorCode") or not result.get("EventId"):
                # The code only: the message may quote the entry.
                refused[position] = str(result.get("ErrorCode", "NoEventId"))
        return refused

    def _entry(self, change: OrderStatusChanged) -> "PutEventsRequestEntryTypeDef":
        return {
            "EventBusName": self._bus,
            "Source": EVENT_SOURCE,
            "DetailType": EVENT_DETAIL_TYPE,
            "Detail": json.dumps(change.detail(), separators=(",", ":")),
            # The time of the change, not of the publication (a retry keeps it).
            "Time": change.at,
        }


class SqsDeadLetters:
    """The queue of unpublished status events: the tracker sends, the republisher
    receives and deletes."""

    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, letters: Sequence[Unpublished]) -> set[int]:
        failed: set[int] = set()
        for start in range(0, len(letters), MAX_ENTRIES_PER_CALL):
            chunk = letters[start : start + MAX_ENTRIES_PER_CALL]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(start + offset), "MessageBody": letter.model_dump_json(by_alias=True)}
                for offset, letter in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError):
                failed |= set(range(start, start + len(chunk)))
                continue
            failed |= {int(entry["Id"]) for entry in response.get("Failed", [])}
        return failed

    def receive(self, limit: int) -> list[tuple[str, Unpublished]]:
        response = self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=max(1, min(limit, MAX_ENTRIES_PER_CALL)),
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            # A short wait, so an empty answer means an empty queue, not an unlucky sample.
            WaitTimeSeconds=1,
        )
        return [
            (message["ReceiptHandle"], Unpublished.model_validate_json(message["Body"]))
            for message in response.get("Messages", [])
        ]

    def delete(self, handles: Sequence[str]) -> None:
        for start in range(0, len(handles), MAX_ENTRIES_PER_CALL):
            chunk = handles[start : start + MAX_ENTRIES_PER_CALL]
            self._client.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
