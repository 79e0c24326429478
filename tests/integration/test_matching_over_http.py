"""An order placed over HTTP is matched by the deployed MatcherFunction, fed by the
Orders stream, within a second or two; one that fits no line becomes UNMATCHED
with the reason for every line."""

import time
import uuid
from typing import Any

import pytest
from fundrouter.service.matching import LineCatalog

from tests.support.factories import line_body, order_body
from tests.support.stack import HttpResult, LocalStack

pytestmark = pytest.mark.integration

# The matcher caches line configuration for this long: a line created just now is
# offered to orders once every warm matcher has re-read the catalog.
CATALOG_TTL = LineCatalog.__init__.__defaults__[0]  # type: ignore[index]


def wait_for_decision(stack: LocalStack, token: str, order_id: str) -> tuple[HttpResult, float]:
    started = time.monotonic()
    while True:
        answer = stack.call("GET", f"/v1/orders/{order_id}", token)
        if answer.body.get("status") != "RECEIVED" or time.monotonic() - started > 10:
            return answer, time.monotonic() - started
        time.sleep(0.05)


def order(product: str, amount: int) -> dict[str, Any]:
    return order_body(
        orderId=f"http-{uuid.uuid4().hex[:10]}",
        amount=amount,
        product=product,
        customer={"id": "c-1", "region": "GD", "creditGrade": "B"},
        metadata={},
    )


def test_orders_are_matched_or_unmatched_with_reasons_within_seconds(
    local_stack: LocalStack,
) -> None:
    admin = local_stack.token("ADMIN", "fundrouter/lines.admin")
    tenant = local_stack.token("TENANT", "fundrouter/orders.write fundrouter/orders.read")
    product = f"p{uuid.uuid4().hex[:10]}"
    line = line_body(
        name="small loans",
        limit=10_000_000,
        minAmount=10_000,
        maxAmount=1_000_000,
        products=[product],
        priority=0,  # first of the lines a decision names, however many the stack holds
    )
    line_id = f"small-{product}"
    assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, line).status == 201
    time.sleep(CATALOG_TTL + 0.5)
    fits, too_big = order(product, 250_000), order(product, 2_000_000)

    assert local_stack.call("POST", "/v1/orders", tenant, fits).status == 202
    assert local_stack.call("POST", "/v1/orders", tenant, too_big).status == 202
    matched, seconds = wait_for_decision(local_stack, tenant, fits["orderId"])
    unmatched, _ = wait_for_decision(local_stack, tenant, too_big["orderId"])

    assert matched.body["status"] == "MATCHED"
    assert seconds < 2
    assert matched.body["lineId"] == line_id
    assert matched.body["reserved"] == 250_000
    assert {"lineId": line_id, "outcome": "CLAIMED", "code": None, "reason": None} in matched.body[
        "decision"
    ]["candidates"]
    assert unmatched.body["status"] == "UNMATCHED"
    reasons = {c["lineId"]: c["reason"] for c in unmatched.body["decision"]["candidates"]}
    assert reasons[line_id] == "amount above maxAmount 1000000"
    shown = local_stack.call("GET", f"/v1/lines/{line_id}", admin).body
    assert (shown["reserved"], shown["available"]) == (250_000, 10_000_000 - 250_000)
