"""moto, cheaper, with the same outcomes (proved by test_the_moto_shortcuts_change_no_
outcome in tests/handlers/test_model_simulation.py): for the model simulation and for
benchmarks that drive many transactions. Imports nothing from tests, so a benchmark
can load it by path."""

import copy
from collections.abc import Iterator
from typing import Any, Final

import pytest
from moto.core.parse import BaseJSONParser
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb import models as moto_dynamodb_models
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.dynamo_type import Item as MotoItem
from moto.dynamodb.models.table import Table as MotoTable

ITEM_SIZE_LIMIT: Final = 405_000  # moto's: DynamoDB's 400 KB, as measured


def _wire_form(shape: Any, value: Any) -> bool:
    """An attribute value already in DynamoDB's JSON wire form, without binary."""
    return (
        shape.name == "AttributeValue"
        and isinstance(value, dict)
        and not {"B", "BS"} & value.keys()
    )


def pass_items_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto decodes each request and encodes each response by walking botocore's
    shapes member by member; for an item (a recursive AttributeValue union per
    attribute) that costs milliseconds, more than the rest of a step. The wire form
    of an attribute value is the very dict moto builds from it and then encodes, so
    those are passed through as they are. Binary values, which this test never
    stores, keep moto's own path."""
    parse, serialize = BaseJSONParser._parse_structure, BaseJSONSerializer._serialize_type_structure

    def parse_structure(parser: BaseJSONParser, shape: Any, value: Any) -> Any:
        return value if _wire_form(shape, value) else parse(parser, shape, value)

    def serialize_structure(
        serializer: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if _wire_form(shape, value):
            serialized[key] = value
        else:
            serialize(serializer, serialized, value, shape, key)

    monkeypatch.setattr(BaseJSONParser, "_parse_structure", parse_structure)
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)


class _TablesNotCopied:
    """moto's `copy` module, less the copying of whole tables."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, MotoTable) else copy.deepcopy(value, memo)


def _transaction_keys(backend: Any, transact_items: list[dict[str, Any]]) -> Iterator[Any]:
    for entry in transact_items:
        operation = next(iter(entry.values()))
        table = backend.get_table(operation["TableName"])
        names = [n for n in (table.hash_key_attr, table.range_key_attr) if n is not None]
        yield table, operation.get("Key") or {n: operation["Item"][n] for n in names}


def undo_transactions_item_by_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto makes TransactWriteItems atomic by deep-copying each table it touches, once
    per item, and putting the copies back when the transaction is cancelled: with
    order items of kilobytes that is most of a step. Here only the items the
    transaction names are copied beforehand, and put back (with the stream records
    the transaction added dropped) when it is cancelled: the same outcome, item for
    item, as moto's own rollback, for a fraction of the cost. The conditions, the
    writes and the cancellation reasons stay moto's."""
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [
            (table, key, copy.deepcopy(backend.get_item(table.name, key)))
            for table, key in _transaction_keys(backend, transact_items)
        ]
        streams = {
            table.name: (table.stream_shard, len(table.stream_shard.items))
            for table, _, _ in saved
            if table.stream_shard is not None
        }
        try:
            original(backend, transact_items)
        except Exception:
            for table, key, before in reversed(saved):
                hash_value, range_value = backend.get_keys_value(table, key)
                assert range_value is not None  # both tables have a sort key
                if before is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = before
            for shard, length in streams.values():
                del shard.items[length:]
            raise

    monkeypatch.setattr(moto_dynamodb_models, "copy", _TablesNotCopied())
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", transact_write_items)


def check_item_size_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks DynamoDB's 400 KB item limit as it builds an item, re-measuring
    the whole item at every attribute: quadratic, and with order histories the bulk
    of every write. The size only grows while the item is built, so one check of the
    whole item at the end raises exactly when moto's would."""

    def build_item(item: MotoItem, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        item.hash_key, item.range_key = hash_key, range_key
        item.attrs = LimitedSizeDict()
        for key, value in attrs.items():
            dict.__setitem__(item.attrs, key, DynamoType(value))
        if item.size() > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge

    monkeypatch.setattr(MotoItem, "__init__", build_item)


def speed_up_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three shortcuts above: moto, cheaper, with the same outcomes (proved by
    test_the_moto_shortcuts_change_no_outcome)."""
    pass_items_as_they_are(monkeypatch)
    undo_transactions_item_by_item(monkeypatch)
    check_item_size_once(monkeypatch)
