"""The order events bus: OrderStatusChanged published with EventBridge PutEvents.

PutEvents takes at most 10 entries and answers per entry: a call can succeed while
some of its entries were refused (``FailedEntryCount``, an ``ErrorCode`` on each
refused entry, in request order). Every refused entry, and every entry of a call
that failed as a whole, is reported back by position, so the stream record behind
it is retried; nothing is dropped silently.
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from fundrouter.service.tracking import EVENT_DETAIL_TYPE, EVENT_SOURCE, OrderStatusChanged
from fundrouter.settings import EventBusSettings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES_PER_CALL: Final = 10
__all__ = ["MAX_ENTRIES_PER_CALL", "EventBridgePublisher", "EventBusSettings"]


class EventBridgePublisher:
    """Publishes status changes to one event bus, 10 entries per PutEvents call."""

    def __init__(self, client: "EventBridgeClient", bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, changes: Sequence[OrderStatusChanged]) -> dict[int, str]:
        refused: dict[int, str] = {}
        for start in range(0, len(changes), MAX_ENTRIES_PER_CALL):
            chunk = changes[start : start + MAX_ENTRIES_PER_CALL]
            refused |= {start + offset: reason for offset, reason in self._put(chunk).items()}
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
                code = result.get("ErrorCode", "NoEventId")
                refused[position] = f"{code}: {result.get('ErrorMessage', 'not published')}"
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
