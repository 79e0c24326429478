"""The orders event bus on moto, with the template's own subscription rule feeding a
queue (what a subscriber receives) and the unpublished-events queue the tracker
dead-letters to. PutEvents refusals are injected by wrapping the client, as
EventBridge does under throttling and moto never does."""

import json
from collections.abc import Callable
from typing import Any

import boto3
from fundrouter.persistence.eventbus import EventBridgePublisher, SqsDeadLetters

from tests.support.template import resources

BUS = "fundrouter-test-orders"
RULE = "status-changes"


class Bus:
    """The bus, its client, and the queue a subscription rule delivers to."""

    def __init__(self) -> None:
        self.events = boto3.client("events")
        self.sqs = boto3.client("sqs")
        self.events.create_event_bus(Name=BUS)
        self.queue_url = self.sqs.create_queue(QueueName="status-changes")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        # The subscription of template.yaml, as a business system would write it.
        pattern = resources()["StatusChangesRule"]["Properties"]["EventPattern"]
        self.events.put_rule(Name=RULE, EventBusName=BUS, EventPattern=json.dumps(pattern))
        self.events.put_targets(
            Rule=RULE, EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        self.dlq_url = self.sqs.create_queue(QueueName="unpublished")["QueueUrl"]
        self.sink_down = False
        self.waits: list[float] = []
        self.calls: list[list[dict[str, Any]]] = []
        self._refuse: Callable[[dict[str, Any]], bool] = lambda _: False
        real = self.events.put_events

        def put_events(**kwargs: Any) -> Any:
            """PutEvents, except that entries `refuse` picks are answered with an
            ErrorCode (FailedEntryCount > 0) and not published."""
            entries = kwargs["Entries"]
            self.calls.append(entries)
            if not any(self._refuse(json.loads(e["Detail"])) for e in entries):
                return real(**kwargs)
            results = [
                {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
                if self._refuse(json.loads(entry["Detail"]))
                else real(Entries=[entry])["Entries"][0]
                for entry in entries
            ]
            return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}

        self.events.put_events = put_events

    def publisher(self) -> EventBridgePublisher:
        return EventBridgePublisher(self.events, BUS, sleep=self.waits.append)

    def dead_letters(self) -> SqsDeadLetters:
        """The queue adapter; while `sink_down`, SQS refuses every message."""
        sink = SqsDeadLetters(self.sqs, self.dlq_url)
        real = sink.send
        sink.send = lambda letters: set(range(len(letters))) if self.sink_down else real(letters)  # type: ignore[method-assign]
        return sink

    def received(self) -> list[dict[str, Any]]:
        """Every event the subscriber's queue got, in order."""
        return self._drain(self.queue_url)

    def letters(self) -> list[dict[str, Any]]:
        """Every letter on the unpublished-events queue."""
        return self._drain(self.dlq_url)

    def _drain(self, url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def refusing(self, refuse: Callable[[dict[str, Any]], bool]) -> None:
        """From now on, refuse the entries whose detail `refuse` picks."""
        self._refuse = refuse


def details(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["detail"] for event in received]
