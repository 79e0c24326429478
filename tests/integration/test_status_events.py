"""An order placed over HTTP and matched by the deployed MatcherFunction reaches a
subscriber of the orders event bus as two OrderStatusChanged events, published by
the deployed TrackerFunction from the Orders stream: RECEIVED (from nothing) and
MATCHED (from RECEIVED), each with the order's version. The subscriber is the
template's own rule, StatusChangesRule, feeding StatusChangesQueue."""

import json
import time
import uuid
from typing import Any

import pytest
from fundrouter.service.matching import LineCatalog

from tests.support.factories import line_body, order_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

STACK_NAME = "fundrouter-local"
# The matcher caches line configuration for this long (see test_matching_over_http).
CATALOG_TTL = LineCatalog.__init__.__defaults__[0]  # type: ignore[index]


def stack_output(stack: LocalStack, key: str) -> str:
    described = stack.client("cloudformation").describe_stacks(StackName=STACK_NAME)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0]["Outputs"]}
    return outputs[key]


def events_for(
    stack: LocalStack, queue_url: str, order_id: str, wanted: int, seconds: float = 60
) -> list[dict[str, Any]]:
    """The OrderStatusChanged events of one order the queue received, taken off the
    queue. Other orders' events (earlier tests leave hundreds) are hidden for a minute
    as they are read, so the search moves through the queue instead of re-reading its
    head; they reappear afterwards for whoever reads them."""
    sqs = stack.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while len(found) < wanted and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        )
        for message in answer.get("Messages", []):
            event = json.loads(message["Body"])
            if event.get("detail", {}).get("orderId") == order_id:
                found.append(event)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found, key=lambda e: e["detail"]["version"])


def test_a_matched_order_reaches_the_subscriber_as_received_then_matched(
    local_stack: LocalStack,
) -> None:
    admin = local_stack.token("ADMIN", "fundrouter/lines.admin")
    tenant = local_stack.token("TENANT", "fundrouter/orders.write fundrouter/orders.read")
    product = f"p{uuid.uuid4().hex[:10]}"
    line_id = f"events-{product}"
    line = line_body(
        funderId="bank-e",
        name="status events",
        limit=10_000_000,
        minAmount=10_000,
        maxAmount=1_000_000,
        products=[product],
        priority=1,
    )
    assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, line).status == 201
    time.sleep(CATALOG_TTL + 0.5)
    queue_url = stack_output(local_stack, "StatusChangesQueueUrl")
    order_id = f"events-{uuid.uuid4().hex[:10]}"
    body = order_body(
        orderId=order_id,
        amount=250_000,
        product=product,
        customer={"id": "c-1", "region": "GD", "creditGrade": "B"},
        metadata={},
    )

    assert local_stack.call("POST", "/v1/orders", tenant, body).status == 202
    received = events_for(local_stack, queue_url, order_id, wanted=2)

    order = local_stack.call("GET", f"/v1/orders/{order_id}", tenant).body
    assert order["status"] == "MATCHED"
    assert [(e["source"], e["detail-type"]) for e in received] == [
        ("fundrouter", "OrderStatusChanged")
    ] * 2
    details = [e["detail"] for e in received]
    common = {
        "tenantId": local_stack.client_id,
        "orderId": order_id,
        "amount": 250_000,
        "currency": "CNY",
        "outstanding": 0,
    }
    assert details == [
        common
        | {
            "from": None,
            "to": "RECEIVED",
            "lineId": None,
            "funderId": None,
            "reserved": 0,
            "at": order["createdAt"],
            "version": 1,
        },
        common
        | {
            "from": "RECEIVED",
            "to": "MATCHED",
            "lineId": line_id,
            "funderId": "bank-e",
            "reserved": 250_000,
            "at": order["updatedAt"],
            "version": order["version"],
        },
    ]
    assert order["version"] == 2
