"""A change is honoured by the next decision after it commits: an operator creates a
line, resumes a paused one or changes a tenant's routing, and an order sent at once
that only the change makes eligible is MATCHED to it, never UNMATCHED on the matcher's
cached view. Twenty times in a row each, over HTTP against the deployed matcher."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_matching_concurrency import CONCURRENCY_LINE
from tests.integration.test_matching_over_http import order, wait_for_decision
from tests.support.factories import line_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

ROUNDS = 20


@pytest.fixture
def admin(local_stack: LocalStack) -> str:
    return local_stack.token("ADMIN", "fundrouter/lines.admin")


@pytest.fixture
def tenant(local_stack: LocalStack) -> str:
    return local_stack.token("TENANT", "fundrouter/orders.write fundrouter/orders.read")


@pytest.fixture
def routing(local_stack: LocalStack, admin: str) -> Iterator[str]:
    """The tenant's routing path; every line again once the test is done."""
    path = f"/v1/tenants/{local_stack.client_id}/routing"
    yield path
    restored = local_stack.call("PUT", path, admin, {"strategy": "PRIORITY", "lineIds": []})
    assert restored.status == 200, restored.body


def line(product: str, **changes: Any) -> dict[str, Any]:
    """A line that takes only `product`, so no other test's order can reach it."""
    # Ranked last, so other tests' decisions on the shared stack name their own lines.
    return line_body(CONCURRENCY_LINE, products=[product], limit=10_000_000, priority=90) | changes


def warm_up(stack: LocalStack, tenant: str, product: str) -> None:
    """An order no line takes before the change, so that the matcher's container
    holds a cached view in which the order is ineligible."""
    sent = order(product, 250_000)
    assert stack.call("POST", "/v1/orders", tenant, sent).status == 202
    decided, _ = wait_for_decision(stack, tenant, sent["orderId"])
    assert decided.body["status"] == "UNMATCHED", decided.body


def assert_matched_at_once(stack: LocalStack, tenant: str, product: str, line_id: str) -> None:
    sent = order(product, 250_000)
    assert stack.call("POST", "/v1/orders", tenant, sent).status == 202
    decided, _ = wait_for_decision(stack, tenant, sent["orderId"])
    assert (decided.body["status"], decided.body.get("lineId")) == ("MATCHED", line_id), (
        decided.body
    )


def test_a_line_created_takes_the_next_order_at_once(
    local_stack: LocalStack, admin: str, tenant: str
) -> None:
    run = uuid.uuid4().hex[:8]
    for index in range(ROUNDS):
        product = f"new{run}{index}"
        warm_up(local_stack, tenant, product)  # UNMATCHED: no line takes it yet
        line_id = f"created-{run}-{index}"
        assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, line(product)).status == 201
        assert_matched_at_once(local_stack, tenant, product, line_id)


def test_a_line_resumed_takes_the_next_order_at_once(
    local_stack: LocalStack, admin: str, tenant: str
) -> None:
    run = uuid.uuid4().hex[:8]
    for index in range(ROUNDS):
        product, line_id = f"res{run}{index}", f"resumed-{run}-{index}"
        paused = line(product, status="PAUSED")
        assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, paused).status == 201
        warm_up(local_stack, tenant, product)  # UNMATCHED: LINE_PAUSED
        resumed = local_stack.call("PATCH", f"/v1/lines/{line_id}", admin, {"status": "ACTIVE"})
        assert resumed.status == 200, resumed.body
        assert_matched_at_once(local_stack, tenant, product, line_id)


def test_a_routing_change_sends_the_next_order_to_its_line_at_once(
    local_stack: LocalStack, admin: str, tenant: str, routing: str
) -> None:
    run = uuid.uuid4().hex[:8]
    other = f"other-{run}"  # the tenant is routed to a line of another product only
    assert local_stack.call("PUT", f"/v1/lines/{other}", admin, line(f"x{run}")).status == 201
    for index in range(ROUNDS):
        product, line_id = f"route{run}{index}", f"routed-{run}-{index}"
        assert local_stack.call("PUT", f"/v1/lines/{line_id}", admin, line(product)).status == 201
        policy = {"strategy": "PRIORITY", "lineIds": [other]}
        assert local_stack.call("PUT", routing, admin, policy).status == 200
        warm_up(local_stack, tenant, product)  # UNMATCHED: NOT_IN_POLICY
        policy = {"strategy": "PRIORITY", "lineIds": [other, line_id]}
        assert local_stack.call("PUT", routing, admin, policy).status == 200
        assert_matched_at_once(local_stack, tenant, product, line_id)
