"""The TrackerFunction on moto, driven by the stream batches in events/tracker: an
event bus with the template's own subscription rule feeding a queue, so each test
reads what a subscriber receives, and the unpublished-events queue the tracker
dead-letters to. PutEvents refusals are injected by wrapping the client, as
EventBridge does under throttling and moto never does."""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.orders import Candidate, Decision, HistoryEntry, OrderStatus
from fundrouter.persistence.codec import to_item
from fundrouter.persistence.eventbus import PUBLISH_ATTEMPTS
from fundrouter.persistence.orders import order_from_item, order_item, order_pk
from fundrouter.settings import MissingSetting

from tests.support.api import built_from_environment
from tests.support.aws import FakeLambdaContext
from tests.support.bus import BUS, Bus, details
from tests.support.events import EVENTS, load_event
from tests.support.handlers import handler_module
from tests.support.metrics import emf_blobs, metric_values
from tests.support.template import resources

tracker = handler_module("tracker", "tracker_handler")
RECEIVED_SEQ, MATCHED_SEQ = "200000000000000000001", "200000000000000000002"


@pytest.fixture
def bus(aws: None) -> Bus:
    return Bus()


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    tracker.metrics.clear_metrics()
    yield
    tracker.metrics.clear_metrics()


def run(event: dict[str, Any], bus: Bus) -> dict[str, Any]:
    return dict(tracker.handle(event, FakeLambdaContext(), bus.publisher(), bus.dead_letters()))


RECEIVED_DETAIL = {
    "tenantId": "demotenantclient0000000001",
    "orderId": "shop-20261124-0001",
    "from": None,
    "to": "RECEIVED",
    "lineId": None,
    "funderId": None,
    "amount": 1250000,
    "currency": "CNY",
    "reserved": 0,
    "outstanding": 0,
    "at": "2026-11-24T10:00:00.000Z",
    "version": 1,
}
MATCHED_DETAIL = RECEIVED_DETAIL | {
    "from": "RECEIVED",
    "to": "MATCHED",
    "lineId": "bank-a-consumer",
    "funderId": "bank-a",
    "reserved": 1250000,
    "at": "2026-11-24T10:00:01.000Z",
    "version": 2,
}


# ---------------------------------------------------------------- what is published


def test_each_status_change_of_a_batch_reaches_the_subscriber_once_with_its_detail(
    bus: Bus,
) -> None:
    response = run(load_event("tracker/mixed_batch.json"), bus)

    received = bus.received()
    assert response == {"batchItemFailures": []}
    assert details(received) == [RECEIVED_DETAIL, MATCHED_DETAIL]
    assert {(e["source"], e["detail-type"]) for e in received} == {
        ("fundrouter", "OrderStatusChanged")
    }
    # The event's time is the change's, not the publication's.
    assert [e["time"] for e in received] == ["2026-11-24T10:00:00Z", "2026-11-24T10:00:01Z"]
    assert len(bus.calls) == 1


@pytest.mark.parametrize("sample", ["status_unchanged", "order_event_item", "removed"])
def test_records_that_are_no_status_change_publish_nothing_and_never_fail(
    bus: Bus, sample: str
) -> None:
    response = run(load_event(f"tracker/{sample}.json"), bus)

    assert response == {"batchItemFailures": []}
    assert bus.received() == []
    assert bus.calls == []


def letter(detail: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "tenantId": detail["tenantId"],
        "orderId": detail["orderId"],
        "version": detail["version"],
        "reason": reason,
    }


def test_a_refusal_that_clears_on_a_later_try_is_published_and_nothing_dead_lettered(
    bus: Bus,
) -> None:
    bus.refusing(lambda detail: detail["to"] == "MATCHED" and len(bus.calls) == 1)

    response = run(load_event("tracker/mixed_batch.json"), bus)

    assert response == {"batchItemFailures": []}
    assert details(bus.received()) == [RECEIVED_DETAIL, MATCHED_DETAIL]
    # The second call sends the refused entry only, after a jittered wait.
    assert [len(entries) for entries in bus.calls] == [2, 1]
    assert len(bus.waits) == 1
    assert bus.letters() == []


def test_an_entry_refused_on_every_try_is_dead_lettered_with_its_identity(bus: Bus) -> None:
    bus.refusing(lambda detail: detail["to"] == "MATCHED")

    response = run(load_event("tracker/mixed_batch.json"), bus)

    # Its record does not fail: the letter, not the 24-hour stream, keeps it.
    assert response == {"batchItemFailures": []}
    assert details(bus.received()) == [RECEIVED_DETAIL]
    assert [len(entries) for entries in bus.calls] == [2] + [1] * (PUBLISH_ATTEMPTS - 1)
    assert bus.letters() == [letter(MATCHED_DETAIL, "InternalFailure")]


def test_a_failed_call_dead_letters_every_record_it_carried(bus: Bus) -> None:
    def throttled(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutEvents"
        )

    bus.events.put_events = throttled

    response = run(load_event("tracker/mixed_batch.json"), bus)

    assert response == {"batchItemFailures": []}
    reason = "PutEvents failed: ThrottlingException"
    assert bus.letters() == [letter(RECEIVED_DETAIL, reason), letter(MATCHED_DETAIL, reason)]


def test_unpublished_and_not_dead_lettered_fails_exactly_its_record(bus: Bus) -> None:
    bus.refusing(lambda detail: detail["to"] == "MATCHED")
    bus.sink_down = True

    response = run(load_event("tracker/mixed_batch.json"), bus)

    assert response == {"batchItemFailures": [{"itemIdentifier": MATCHED_SEQ}]}
    assert details(bus.received()) == [RECEIVED_DETAIL]


def test_a_batch_whose_every_record_failed_is_raised_so_lambda_retries_and_bisects(
    bus: Bus,
) -> None:
    bus.refusing(lambda _: True)
    bus.sink_down = True

    with pytest.raises(BatchProcessingError):
        run(load_event("tracker/matched.json"), bus)

    assert bus.received() == []


def test_a_redelivered_record_publishes_again_with_the_same_version(bus: Bus) -> None:
    bus.refusing(lambda detail: detail["to"] == "MATCHED")
    bus.sink_down = True
    first = run(load_event("tracker/mixed_batch.json"), bus)
    assert first == {"batchItemFailures": [{"itemIdentifier": MATCHED_SEQ}]}
    bus.refusing(lambda _: False)
    bus.sink_down = False

    # Lambda redelivers from the failed record on: the MATCHED one and those after.
    redelivered = load_event("tracker/mixed_batch.json")
    redelivered["Records"] = redelivered["Records"][1:]
    again = run(redelivered, bus)
    # A duplicate delivery of the same record (at least once).
    run(load_event("tracker/matched.json"), bus)

    received = details(bus.received())
    assert again == {"batchItemFailures": []}
    assert received == [RECEIVED_DETAIL, MATCHED_DETAIL, MATCHED_DETAIL]
    # Subscribers de-duplicate on (tenantId, orderId, version): two changes remain.
    assert len({(d["tenantId"], d["orderId"], d["version"]) for d in received}) == 2


def many_new_orders(count: int) -> dict[str, Any]:
    template = load_event("tracker/new_order.json")["Records"][0]
    records = []
    for i in range(count):
        record = json.loads(json.dumps(template))
        order = order_from_item(record["dynamodb"]["NewImage"])
        order = order.model_copy(update={"order_id": f"shop-{i:04d}"})
        item = order_item(order)
        record["dynamodb"] |= {
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "NewImage": item,
            "SequenceNumber": str(300000000000000000000 + i),
        }
        records.append(record)
    return {"Records": records}


def test_a_large_batch_is_published_ten_entries_per_call_and_refusals_map_to_records(
    bus: Bus,
) -> None:
    bus.refusing(lambda detail: detail["orderId"] in {"shop-0003", "shop-0017"})
    bus.sink_down = True

    response = run(many_new_orders(25), bus)

    assert [len(entries) for entries in bus.calls] == [10, 10, 5] + [2] * (PUBLISH_ATTEMPTS - 1)
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "300000000000000000003"},
            {"itemIdentifier": "300000000000000000017"},
        ]
    }
    assert len(bus.received()) == 23


def test_a_malformed_record_is_dead_lettered_alone_by_its_keys_naming_no_value(
    bus: Bus,
) -> None:
    event = load_event("tracker/mixed_batch.json")
    event["Records"][0]["dynamodb"]["NewImage"]["amount"] = {"S": "a lot"}

    response = run(event, bus)

    assert response == {"batchItemFailures": []}
    assert details(bus.received()) == [MATCHED_DETAIL]
    assert bus.letters() == [
        letter(RECEIVED_DETAIL, "ValidationError: amount (int_type)") | {"version": None}
    ]


def test_a_malformed_record_without_order_keys_fails_alone(bus: Bus) -> None:
    event = load_event("tracker/mixed_batch.json")
    event["Records"][0]["dynamodb"]["NewImage"]["amount"] = {"S": "a lot"}
    event["Records"][0]["dynamodb"]["Keys"]["pk"] = {"S": "not-an-order"}

    response = run(event, bus)

    assert response == {"batchItemFailures": [{"itemIdentifier": RECEIVED_SEQ}]}
    assert details(bus.received()) == [MATCHED_DETAIL]


def test_a_modify_without_the_old_image_is_dead_lettered_rather_than_guessed(bus: Bus) -> None:
    event = load_event("tracker/matched.json")
    del event["Records"][0]["dynamodb"]["OldImage"]

    assert run(event, bus) == {"batchItemFailures": []}

    assert bus.received() == []
    assert bus.letters() == [letter(MATCHED_DETAIL, "ValueError") | {"version": None}]


# ---------------------------------------------------------------- the Lambda entry point


def test_the_handler_publishes_to_the_configured_bus_and_emits_the_metrics(
    bus: Bus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("UNPUBLISHED_EVENTS_QUEUE_URL", bus.dlq_url)
    event = load_event("tracker/mixed_batch.json")
    unmatched = json.loads(json.dumps(event["Records"][1]))
    unmatched["dynamodb"]["SequenceNumber"] = "200000000000000000009"
    unmatched["dynamodb"]["NewImage"]["status"] = {"S": "UNMATCHED"}
    event["Records"].append(unmatched)

    with built_from_environment():
        response = tracker.handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert [d["to"] for d in details(bus.received())] == ["RECEIVED", "MATCHED", "UNMATCHED"]
    values = metric_values(emf_blobs(capsys.readouterr().out))
    assert values == {
        ("OrdersByStatus", "status=RECEIVED"): 1,
        ("OrdersByStatus", "status=MATCHED"): 1,
        ("OrdersByStatus", "status=UNMATCHED"): 1,
        ("MatchedOrders", "lineId=bank-a-consumer"): 1,
        ("MatchedVolume", "lineId=bank-a-consumer"): 1_250_000,
        # Service-wide, for the unmatched rate: Unmatched / (Matched + Unmatched).
        ("MatchedOrders", ""): 1,
        ("UnmatchedOrders", ""): 1,
        ("StatusEventsDeadLettered", ""): 0,
    }


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_missing_bus_name_stops_the_cold_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    with built_from_environment(), pytest.raises(MissingSetting, match="EVENT_BUS_NAME"):
        tracker.handler(load_event("tracker/new_order.json"), FakeLambdaContext())


# ---------------------------------------------------------------- the samples and the filter


def build_samples() -> dict[str, dict[str, Any]]:
    """events/tracker/*.json, built from real order items (order_item), so they are
    exactly what the Orders stream carries: one order's life, an order-event item
    beside it, and its removal. Rewrite them with
    `.venv/bin/python -m tests.handlers.test_tracker_handler`."""
    base = load_event("matcher/new_order.json")["Records"][0]
    received = order_from_item(base["dynamodb"]["NewImage"])
    start = received.created_at
    matched_at = start + timedelta(seconds=1)
    matched = received.model_copy(
        update={
            "status": OrderStatus.MATCHED,
            "line_id": "bank-a-consumer",
            "funder_id": "bank-a",
            "reserved": received.amount,
            "hold_expires_at": matched_at + timedelta(seconds=900),
            "claim_day": "2026-11-24",
            "decision": Decision(
                strategy="PRIORITY",
                candidates=[
                    Candidate(line_id="bank-a-consumer", outcome="CLAIMED"),
                    Candidate(line_id="trust-b", outcome="ELIGIBLE"),
                ],
            ),
            "history": [
                *received.history,
                HistoryEntry(status=OrderStatus.MATCHED, at=matched_at, line_id="bank-a-consumer"),
            ],
            "updated_at": matched_at,
            "version": 2,
        }
    )
    approved_at, disbursed_at = start + timedelta(hours=1), start + timedelta(hours=2)
    disbursed = matched.model_copy(
        update={
            "status": OrderStatus.DISBURSED,
            "reserved": 0,
            "outstanding": received.amount,
            "hold_expires_at": None,
            "history": [
                *matched.history,
                HistoryEntry(
                    status=OrderStatus.APPROVED, at=approved_at, line_id="bank-a-consumer"
                ),
                HistoryEntry(
                    status=OrderStatus.DISBURSED, at=disbursed_at, line_id="bank-a-consumer"
                ),
            ],
            "updated_at": disbursed_at,
            "version": 4,
        }
    )
    repaid_at = start + timedelta(days=30)
    repaid_in_part = disbursed.model_copy(
        update={"outstanding": 1_000_000, "updated_at": repaid_at, "version": 5}
    )
    event_item = to_item(
        {
            "pk": order_pk(received.tenant_id, received.order_id),
            "sk": "EVENT#evt-77",
            "eventId": "evt-77",
            "type": "REPAID",
            "amount": 250_000,
            "createdAt": format_timestamp(repaid_at),
        }
    )
    numbers = iter(range(200000000000000000001, 200000000000000000100))

    def record(name: str, at: datetime, new: Any = None, old: Any = None) -> dict[str, Any]:
        number = next(numbers)
        item = new if new is not None else old
        stream: dict[str, Any] = {
            "ApproximateCreationDateTime": int(at.timestamp()),
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
        }
        stream |= {"NewImage": new} if new is not None else {}
        stream |= {"OldImage": old} if old is not None else {}
        stream |= {
            "SequenceNumber": str(number),
            "SizeBytes": len(json.dumps([new, old])),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        return {
            "eventID": f"evt-{number % 1_000_000:06d}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "ap-east-1",
            "dynamodb": stream,
            "eventSourceARN": base["eventSourceARN"],
        }

    new_order = record("INSERT", start, new=order_item(received))
    was_matched = record("MODIFY", matched_at, new=order_item(matched), old=order_item(received))
    kept_status = record(
        "MODIFY", repaid_at, new=order_item(repaid_in_part), old=order_item(disbursed)
    )
    order_event = record("INSERT", repaid_at, new=event_item)
    removed = record("REMOVE", start + timedelta(days=400), old=order_item(repaid_in_part))
    batches = {
        "new_order": [new_order],
        "matched": [was_matched],
        "status_unchanged": [kept_status],
        "order_event_item": [order_event],
        "removed": [removed],
        "mixed_batch": [new_order, was_matched, kept_status, order_event, removed],
    }
    return {name: {"Records": records} for name, records in batches.items()}


def write_samples() -> None:
    for name, event in build_samples().items():
        (EVENTS / "tracker" / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")


def test_the_samples_are_built_from_the_tables_own_order_items() -> None:
    on_disk = {
        path.stem: json.loads(path.read_text()) for path in (EVENTS / "tracker").glob("*.json")
    }

    assert on_disk == build_samples(), (
        "events/tracker drifted from order_item: "
        "rewrite with `.venv/bin/python -m tests.handlers.test_tracker_handler`"
    )


def sample_records() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.stem, record)
        for path in sorted((EVENTS / "tracker").glob("*.json"))
        for record in json.loads(path.read_text())["Records"]
    ]


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge / Lambda filter matching, exact values only (all the template uses)."""
    if isinstance(pattern, list):
        return value in pattern
    return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())


def test_the_templates_stream_filter_passes_order_items_only() -> None:
    event = resources("AWS::Serverless::Function")["TrackerFunction"]["Properties"]["Events"]
    filters = [
        json.loads(f["Pattern"])
        for f in event["OrderChanges"]["Properties"]["FilterCriteria"]["Filters"]
    ]

    passed = {
        (name, record["dynamodb"]["Keys"]["sk"]["S"])
        for name, record in sample_records()
        if any(matches(f, record) for f in filters)
    }

    assert {sk for _, sk in passed} == {"ORDER"}
    assert {name for name, _ in passed} == {
        "matched",
        "mixed_batch",
        "new_order",
        "removed",
        "status_unchanged",
    }


if __name__ == "__main__":
    write_samples()
