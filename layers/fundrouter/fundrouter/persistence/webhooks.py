"""Webhook endpoints and deliveries in the Webhooks table, and the queue of attempt
prompts.

    endpoint   pk TENANT#<tenantId>      sk ENDPOINT#<endpointId>
    delivery   pk ENDPOINT#<endpointId>  sk DELIVERY#<deliveryId>   (sorts by event time)

A PENDING delivery carries ``dueShard``/``dueAt`` (when it is due: its next attempt,
or the end of the lease of an attempt under way), the keys of the sparse ``byDue``
index; a finished one drops them, so ``due`` reads only what is due. A finished
delivery gets ``expiresAt``: DynamoDB's TTL collects it later, and nothing reads that
attribute to decide anything."""

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter
from pydantic.alias_generators import to_snake

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.paging import Page
from fundrouter.domain.webhooks import Delivery, DeliveryState, Endpoint
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.retries import CONDITION_FAILED, read

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryOutputTypeDef
    from mypy_boto3_sqs import SQSClient

BY_DUE: Final = "byDue"
DUE_SHARDS: Final = 8
# Finished deliveries stay listable this long before TTL collects them.
KEEP_FINISHED: Final = timedelta(days=30)
_ENDPOINT: Final = "ENDPOINT#"
_DELIVERY: Final = "DELIVERY#"
_MAX_QUEUE_BATCH: Final = 10
MAX_FILTERED_READS: Final = 10


def _text(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _fields(value: Any) -> Any:
    """An item's camelCase attributes, nested ones too, by the domain's field names: the
    decoders below validate them into the dataclasses (the keys, pk and the like, that
    name no field are ignored)."""
    if isinstance(value, dict):
        return {_field_name(k): _fields(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value


_field_name: Final = cache(to_snake)  # a few names, each converted once (a regex each)
_ENDPOINTS: Final = TypeAdapter(Endpoint)
_DELIVERIES: Final = TypeAdapter(Delivery)


def endpoint_item(endpoint: Endpoint) -> dict[str, Any]:
    secrets = [
        _compact(
            {"secret": s.secret, "createdAt": _text(s.created_at), "expiresAt": _text(s.expires_at)}
        )
        for s in endpoint.secrets
    ]
    return to_item(
        _compact(
            {
                "pk": f"TENANT#{endpoint.tenant_id}",
                "sk": f"{_ENDPOINT}{endpoint.endpoint_id}",
                "endpointId": endpoint.endpoint_id,
                "tenantId": endpoint.tenant_id,
                "url": endpoint.url,
                "events": [e.value for e in endpoint.events],
                "description": endpoint.description,
                "secrets": secrets,
                "createdAt": _text(endpoint.created_at),
                "updatedAt": _text(endpoint.updated_at),
                "version": endpoint.version,
            }
        )
    )


def endpoint_from_item(item: dict[str, Any]) -> Endpoint:
    # An endpoint without a description has none stored (_compact).
    return _ENDPOINTS.validate_python({"description": None} | _fields(from_item(item)))


def due_shard(delivery_id: str) -> str:
    digest = hashlib.sha256(delivery_id.encode()).digest()
    return f"WHDUE#{digest[0] % DUE_SHARDS}"


def delivery_item(delivery: Delivery) -> dict[str, Any]:
    """The item as written after an attempt or a re-send: no lease."""
    pending = delivery.state is DeliveryState.PENDING and delivery.next_attempt_at is not None
    finished = delivery.finished_at
    values = {
        "pk": f"{_ENDPOINT}{delivery.endpoint_id}",
        "sk": f"{_DELIVERY}{delivery.delivery_id}",
        "deliveryId": delivery.delivery_id,
        "endpointId": delivery.endpoint_id,
        "tenantId": delivery.tenant_id,
        "eventId": delivery.event_id,
        "eventType": delivery.event_type.value,
        "orderId": delivery.order_id,
        "orderVersion": delivery.order_version,
        "body": delivery.body,
        "createdAt": _text(delivery.created_at),
        "cycleStartedAt": _text(delivery.cycle_started_at),
        "state": delivery.state.value,
        "nextAttemptAt": _text(delivery.next_attempt_at),
        "attempts": [
            _compact(
                {
                    "at": _text(a.at),
                    "durationMs": a.duration_ms,
                    "statusCode": a.status_code,
                    "error": a.error,
                }
            )
            for a in delivery.attempts
        ],
        "attemptCount": delivery.attempt_count,
        "failures": delivery.failures,
        "finishedAt": _text(finished),
        "dueShard": due_shard(delivery.delivery_id) if pending else None,
        "dueAt": _text(delivery.next_attempt_at) if pending else None,
        "expiresAt": None if finished is None else int((finished + KEEP_FINISHED).timestamp()),
    }
    return to_item(_compact(values))


def delivery_from_item(item: dict[str, Any]) -> Delivery:
    return _DELIVERIES.validate_python(_fields(from_item(item)))


def _refused(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == f"{CONDITION_FAILED}Exception"


def _unless_refused(write: Callable[[], object]) -> bool:
    """A conditional write: False when its condition refused it."""
    try:
        write()
    except ClientError as error:
        if _refused(error):
            return False
        raise
    return True


class DynamoWebhookStore:
    def __init__(self, client: "DynamoDBClient", table: str) -> None:
        self._client = client
        self._table = table

    # ------------------------------------------------------------ endpoints

    def add_endpoint(self, endpoint: Endpoint, limit: int) -> bool:
        # A count, then the write: two concurrent creations may pass one over the
        # limit, which only bounds fan-out work, never money.
        counted = self._query_endpoints(endpoint.tenant_id, Select="COUNT", ConsistentRead=True)
        if counted["Count"] >= limit:
            return False
        self._client.put_item(
            TableName=self._table,
            Item=endpoint_item(endpoint),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return True

    def endpoints(self, tenant_id: str) -> list[Endpoint]:
        answer = self._query_endpoints(tenant_id)
        return sorted(
            (endpoint_from_item(i) for i in answer.get("Items", [])), key=lambda e: e.created_at
        )

    def _query_endpoints(self, tenant_id: str, **options: Any) -> "QueryOutputTypeDef":
        return read(
            partial(
                self._client.query,
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": {"S": f"TENANT#{tenant_id}"},
                    ":prefix": {"S": _ENDPOINT},
                },
                **options,
            )
        )

    def _endpoint_key(self, tenant_id: str, endpoint_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"{_ENDPOINT}{endpoint_id}"}}

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        item = self._item(self._endpoint_key(tenant_id, endpoint_id))
        return None if item is None else endpoint_from_item(item)

    def replace_endpoint(self, endpoint: Endpoint) -> bool:
        previous = {":previous": {"N": str(endpoint.version - 1)}}
        return self._put_if(endpoint_item(endpoint), "version = :previous", previous)

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        answer = self._client.delete_item(
            TableName=self._table,
            Key=self._endpoint_key(tenant_id, endpoint_id),
            ReturnValues="ALL_OLD",
        )
        return endpoint_from_item(answer["Attributes"]) if "Attributes" in answer else None

    # ------------------------------------------------------------ deliveries

    def add_delivery(self, delivery: Delivery) -> bool:
        return self._put_if(delivery_item(delivery), "attribute_not_exists(pk)")

    def _delivery_key(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{_ENDPOINT}{endpoint_id}"}, "sk": {"S": f"{_DELIVERY}{delivery_id}"}}

    def delivery(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        item = self._item(self._delivery_key(endpoint_id, delivery_id))
        return None if item is None else delivery_from_item(item)

    def deliveries(
        self, endpoint_id: str, state: DeliveryState | None, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        start = None if cursor is None else _decode_cursor(cursor, state)
        found: list[Delivery] = []
        # A filtered page reads at most this many pages of the endpoint's deliveries,
        # then answers with what it found and a cursor to go on from.
        for _ in range(MAX_FILTERED_READS):
            if len(found) >= limit:
                break
            request: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": f"{_ENDPOINT}{endpoint_id}"},
                    ":prefix": {"S": _DELIVERY},
                },
                "ScanIndexForward": False,
                # Limit counts the items read before the filter: a page never reads
                # more than it may return.
                "Limit": limit - len(found),
            }
            if state is not None:
                request["FilterExpression"] = "#state = :state"
                request["ExpressionAttributeNames"] = {"#state": "state"}
                request["ExpressionAttributeValues"][":state"] = {"S": state.value}
            if start is not None:
                request["ExclusiveStartKey"] = {
                    "pk": {"S": f"{_ENDPOINT}{endpoint_id}"},
                    "sk": {"S": start},
                }
            answer = read(partial(self._client.query, **request))
            found += [delivery_from_item(i) for i in answer.get("Items", [])]
            last = answer.get("LastEvaluatedKey")
            start = None if last is None else str(last["sk"]["S"])
            if start is None:
                break
        return Page(found, None if start is None else _encode_cursor(start, state))

    def claim(self, delivery: Delivery, now: datetime, until: datetime) -> bool:
        return _unless_refused(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key=self._delivery_key(delivery.endpoint_id, delivery.delivery_id),
                UpdateExpression="SET leasedUntil = :until, dueAt = :until",
                ConditionExpression="#state = :pending AND attemptCount = :count"
                " AND (attribute_not_exists(leasedUntil) OR leasedUntil < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":until": {"S": format_timestamp(until)},
                    ":pending": {"S": DeliveryState.PENDING.value},
                    ":count": {"N": str(delivery.attempt_count)},
                    ":now": {"S": format_timestamp(now)},
                },
            )
        )

    def record(self, delivery: Delivery, previous: Delivery) -> bool:
        lease = previous.leased_until
        condition = "attemptCount = :count AND " + (
            "leasedUntil = :lease" if lease is not None else "attribute_not_exists(leasedUntil)"
        )
        values = {":count": {"N": str(previous.attempt_count)}}
        if lease is not None:
            values[":lease"] = {"S": format_timestamp(lease)}
        return self._put_if(delivery_item(delivery), condition, values)

    def resend(self, delivery: Delivery, now: datetime) -> bool:
        return self._put_if(
            delivery_item(delivery),
            "attemptCount = :count AND (attribute_not_exists(leasedUntil) OR leasedUntil < :now)",
            {":count": {"N": str(delivery.attempt_count)}, ":now": {"S": format_timestamp(now)}},
        )

    def _item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        answer = read(
            partial(self._client.get_item, TableName=self._table, Key=key, ConsistentRead=True)
        )
        return answer.get("Item")

    def _put_if(
        self, item: dict[str, Any], condition: str, values: dict[str, Any] | None = None
    ) -> bool:
        # DynamoDB refuses an empty ExpressionAttributeValues.
        options: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        return _unless_refused(
            partial(
                self._client.put_item,
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                **options,
            )
        )

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        for shard in range(DUE_SHARDS):
            answer = read(
                partial(
                    self._client.query,
                    TableName=self._table,
                    IndexName=BY_DUE,
                    KeyConditionExpression="dueShard = :shard AND dueAt <= :now",
                    ExpressionAttributeValues={
                        ":shard": {"S": f"WHDUE#{shard}"},
                        ":now": {"S": format_timestamp(now)},
                    },
                    Limit=max(1, limit - len(keys)),
                )
            )
            keys += [
                (i["pk"]["S"].removeprefix(_ENDPOINT), i["sk"]["S"].removeprefix(_DELIVERY))
                for i in answer.get("Items", [])
            ]
            if len(keys) >= limit:
                break
        return keys


def _encode_cursor(sort_key: str, state: DeliveryState | None) -> str:
    raw = json.dumps({"sk": sort_key, "state": None if state is None else state.value})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, state: DeliveryState | None) -> str:
    """Only a cursor of this listing (same state filter) is taken."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor from error
    sort_key = raw.get("sk") if isinstance(raw, dict) else None
    expected = None if state is None else state.value
    if (
        not isinstance(sort_key, str)
        or not sort_key.startswith(_DELIVERY)
        or raw.get("state") != expected
    ):
        raise InvalidCursor
    return sort_key


class SqsAttemptQueue:
    """Prompts for attempts, as {"endpointId", "deliveryId"} messages, delayed."""

    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, keys: Sequence[tuple[str, str]], delay_seconds: int = 0) -> None:
        # A prompt that is not sent is not lost work: the delivery is on the due
        # index, and the sweep prompts it again.
        for start in range(0, len(keys), _MAX_QUEUE_BATCH):
            chunk = keys[start : start + _MAX_QUEUE_BATCH]
            try:
                self._client.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {
                            "Id": str(offset),
                            "MessageBody": json.dumps({"endpointId": e, "deliveryId": d}),
                            "DelaySeconds": min(900, max(0, delay_seconds)),
                        }
                        for offset, (e, d) in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError):
                continue
