"""Between plain Python values and DynamoDB attribute values. DynamoDB numbers come
back as Decimal; money and counters are integers, so integral Decimals become int.
And an item's size as DynamoDB counts it, which is what its writes cost."""

import math
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value


def attribute_size(value: dict[str, Any]) -> int:
    """A value's size by DynamoDB's published item-size rules (an estimate)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    return len(str(inner).encode())


def item_size(item: dict[str, Any]) -> int:
    """The bytes DynamoDB counts for an item: what its 400 KB limit and its write
    units (one per started KB, two inside a transaction) are measured on."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())
