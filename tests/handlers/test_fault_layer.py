"""The fault layer (tests/faults) on moto: each kind fails the way AWS does, and
leaves written exactly what AWS would have written."""

import contextlib
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError

from tests.faults import KINDS, FaultInjector, RandomPlan, install_from_environment, parse
from tests.support.aws import scan_all
from tests.support.template import create_table_kwargs

TABLE = "faults-orders"


@pytest.fixture
def table(dynamodb: Any) -> str:
    dynamodb.create_table(**create_table_kwargs("OrdersTable", TABLE))
    return TABLE


def always(dynamodb: Any, kind: str) -> FaultInjector:
    return FaultInjector(RandomPlan(1, 1.0, [kind])).install(dynamodb.meta.events)


def item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "ORDER"}, "n": {"N": "1"}}


def stored(table: str) -> list[dict[str, Any]]:
    """Read with a client of its own: the faulty one may fail the scan too."""
    return scan_all(boto3.client("dynamodb"), table)


def put(pk: str) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": item(pk)}}


def test_throttling_refuses_the_write_and_writes_nothing(dynamodb: Any, table: str) -> None:
    injector = always(dynamodb, "throttling")
    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(TableName=table, Item=item("a"))
    assert raised.value.response["Error"]["Code"] in {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    }
    assert stored(table) == []
    assert injector.counts == {"throttling": 1}


def test_a_conflict_comes_in_both_of_its_forms(dynamodb: Any, table: str) -> None:
    always(dynamodb, "transaction-conflict")
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[put("a"), put("b"), put("c")])
    with pytest.raises(ClientError) as conflict:
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "a"}, "sk": {"S": "ORDER"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}},
        )

    reasons = cancelled.value.response["CancellationReasons"]
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert sorted(r["Code"] for r in reasons) == ["None", "None", "TransactionConflict"]
    assert conflict.value.response["Error"]["Code"] == "TransactionConflictException"
    assert stored(table) == []


def test_a_timeout_after_the_commit_hides_a_write_that_happened(dynamodb: Any, table: str) -> None:
    always(dynamodb, "timeout-after-commit")
    with pytest.raises(ReadTimeoutError):
        dynamodb.put_item(TableName=table, Item=item("a"))
    assert [i["pk"]["S"] for i in stored(table)] == ["a"]


def test_a_resend_after_the_commit_answers_the_second_attempt(dynamodb: Any, table: str) -> None:
    injector = always(dynamodb, "resend-after-commit")
    with pytest.raises(ClientError) as raised:  # the first attempt wrote it
        dynamodb.put_item(
            TableName=table, Item=item("a"), ConditionExpression="attribute_not_exists(pk)"
        )
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert len(stored(table)) == 1
    assert injector.fired == ["resend-after-commit on PutItem"]


def test_a_reset_before_sending_writes_nothing(dynamodb: Any, table: str) -> None:
    always(dynamodb, "connection-reset")
    with pytest.raises(ConnectionClosedError):
        dynamodb.transact_write_items(TransactItems=[put("a")])
    assert stored(table) == []


def test_unprocessed_keys_are_the_keys_not_read(dynamodb: Any, table: str) -> None:
    for pk in "abcde":
        dynamodb.put_item(TableName=table, Item=item(pk))
    always(dynamodb, "unprocessed-keys")
    keys = [{"pk": {"S": pk}, "sk": {"S": "ORDER"}} for pk in "abcde"]
    answer = dynamodb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})

    read = {i["pk"]["S"] for i in answer["Responses"].get(table, [])}
    left = answer["UnprocessedKeys"][table]
    assert read
    assert left["ConsistentRead"] is True
    assert read | {k["pk"]["S"] for k in left["Keys"]} == set("abcde")
    assert read.isdisjoint(k["pk"]["S"] for k in left["Keys"])


def test_a_partial_put_events_failure_delivers_only_the_rest(aws: None) -> None:
    events = boto3.client("events")
    injector = FaultInjector(RandomPlan(3, 1.0, ["partial-failure"])).install(events.meta.events)
    entries = [
        {"Source": "fundrouter", "DetailType": "t", "Detail": f'{{"n": {n}}}'} for n in range(6)
    ]
    answer = events.put_events(Entries=entries)

    failed = [e for e in answer["Entries"] if "ErrorCode" in e]
    assert len(answer["Entries"]) == 6
    assert answer["FailedEntryCount"] == len(failed) >= 1
    assert injector.counts == {"partial-failure": 1}


def test_the_same_seed_gives_the_same_faults(dynamodb: Any, table: str) -> None:
    runs = []
    for attempt in range(2):
        injector = FaultInjector(RandomPlan(7, 0.3)).install(dynamodb.meta.events)
        for n in range(40):
            with contextlib.suppress(ClientError, BotoCoreError):
                dynamodb.put_item(TableName=table, Item=item(f"{attempt}-{n}"))
        injector.uninstall(dynamodb.meta.events)
        runs.append(injector.fired)
    assert runs[0] == runs[1]
    assert len({f.split()[0] for f in runs[0]}) >= 3


def test_the_lambda_entry_hooks_the_default_session(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNDROUTER_FAULTS", "seed=7,rate=1,kinds=throttling")
    boto3.client("dynamodb").create_table(**create_table_kwargs("OrdersTable", TABLE))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    injector = install_from_environment()
    client = boto3.client("dynamodb")  # as a handler module makes its client

    with pytest.raises(ClientError):
        client.put_item(TableName=TABLE, Item=item("a"))
    assert injector is not None
    assert injector.counts == {"throttling": 1}
    assert scan_all(boto3.Session().client("dynamodb"), TABLE) == []
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def test_a_setting_it_does_not_understand_is_an_error() -> None:
    assert parse("seed=7,rate=0.05").kinds == frozenset(KINDS)
    with pytest.raises(ValueError, match="rate"):
        parse("seed=7,kinds=throttling")
    with pytest.raises(ValueError, match="not understood"):
        parse("rate=0.1,kinds=gremlins")
