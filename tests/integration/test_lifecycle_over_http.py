"""An order's life over real HTTP on the local stack: matched by the deployed matcher,
then approved, partly disbursed and repaid in two parts, with the line's counters
moving exactly; a cancelled order gives its reservation back; a declined order is
re-routed to the next line; a repeated eventId changes nothing; a disallowed event
is 409."""

import time
import uuid
from typing import Any

import pytest
from fundrouter.service.matching import LineCatalog

from tests.support.factories import line_body, order_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

CATALOG_TTL = LineCatalog.__init__.__defaults__[0]  # type: ignore[index]


class Tour:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.admin = stack.token("ADMIN", "fundrouter/lines.admin")
        self.tenant = stack.token("TENANT", "fundrouter/orders.write fundrouter/orders.read")
        self.product = f"p{uuid.uuid4().hex[:10]}"
        self.lines = [f"first-{self.product}", f"second-{self.product}"]
        for priority, line_id in enumerate(self.lines):
            body = line_body(
                funderId=line_id.split("-")[0],
                name=line_id,
                limit=10_000_000,
                products=[self.product],
                aprBps=1000,
                priority=priority,
            )
            assert stack.call("PUT", f"/v1/lines/{line_id}", self.admin, body).status == 201
        time.sleep(CATALOG_TTL + 0.5)

    def order(self, amount: int) -> str:
        order_id = f"life-{uuid.uuid4().hex[:10]}"
        body = order_body(
            orderId=order_id,
            amount=amount,
            product=self.product,
            customer={"id": "c-1"},
            metadata={},
        )
        assert self.stack.call("POST", "/v1/orders", self.tenant, body).status == 202
        self.wait(order_id, "MATCHED")
        return order_id

    def wait(self, order_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            order = self.stack.call("GET", f"/v1/orders/{order_id}", self.tenant).body
            if order["status"] == status or time.monotonic() > deadline:
                assert order["status"] == status
                return dict(order)
            time.sleep(0.1)

    def event(self, order_id: str, kind: str, amount: int | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"eventId": f"evt-{uuid.uuid4().hex[:8]}", "type": kind}
        if amount is not None:
            body["amount"] = amount
        answer = self.stack.call("POST", f"/v1/orders/{order_id}/events", self.tenant, body)
        return answer.status, answer.body

    def line(self, index: int = 0) -> tuple[int, int, int]:
        shown = self.stack.call("GET", f"/v1/lines/{self.lines[index]}", self.admin).body
        return shown["reserved"], shown["drawn"], shown["available"]


@pytest.fixture(scope="module")
def tour(local_stack: LocalStack) -> Tour:
    return Tour(local_stack)


def test_received_matched_approved_disbursed_repaid_moves_the_line_exactly(tour: Tour) -> None:
    order_id = tour.order(1_250_000)
    assert tour.line() == (1_250_000, 0, 8_750_000)

    assert tour.event(order_id, "APPROVED")[0] == 200
    assert tour.event(order_id, "DISBURSED", 1_000_000)[1]["outstanding"] == 1_000_000
    assert tour.line() == (0, 1_000_000, 9_000_000)
    assert tour.event(order_id, "REPAID", 400_000)[1]["status"] == "DISBURSED"
    assert tour.line() == (0, 600_000, 9_400_000)
    status, repaid = tour.event(order_id, "REPAID", 600_000)

    assert (status, repaid["status"], repaid["outstanding"]) == (200, "REPAID", 0)
    assert tour.line() == (0, 0, 10_000_000)
    assert [h["status"] for h in repaid["history"]] == [
        "RECEIVED", "MATCHED", "APPROVED", "DISBURSED", "DISBURSED", "REPAID",
    ]  # fmt: skip


def test_a_cancelled_order_gives_its_reservation_back(tour: Tour) -> None:
    order_id = tour.order(2_000_000)
    reserved_before = tour.line()[0]

    status, cancelled = tour.event(order_id, "CANCELLED")

    assert (status, cancelled["status"]) == (200, "CANCELLED")
    assert tour.line()[0] == reserved_before - 2_000_000


def test_a_declined_order_is_rerouted_to_the_next_line(tour: Tour) -> None:
    order_id = tour.order(300_000)
    first_before, second_before = tour.line(0)[0], tour.line(1)[0]

    status, declined = tour.event(order_id, "DECLINED")
    rerouted = tour.wait(order_id, "MATCHED")

    assert (status, declined["declinedLineIds"]) == (200, [tour.lines[0]])
    assert rerouted["lineId"] == tour.lines[1]
    assert tour.line(0)[0] == first_before - 300_000
    assert tour.line(1)[0] == second_before + 300_000


def test_a_repeated_event_changes_nothing_and_a_disallowed_one_is_409(tour: Tour) -> None:
    order_id = tour.order(100_000)
    event = {"eventId": f"evt-{uuid.uuid4().hex[:8]}", "type": "DISBURSED", "amount": 100_000}
    path = f"/v1/orders/{order_id}/events"

    first = tour.stack.call("POST", path, tour.tenant, event)
    counters = tour.line()
    again = tour.stack.call("POST", path, tour.tenant, event)
    disallowed = tour.event(order_id, "APPROVED")

    assert (first.status, again.status) == (200, 200)
    assert again.body == first.body
    assert tour.line() == counters
    assert disallowed[0] == 409
    assert "DISBURSED" in disallowed[1]["error"]["message"]
