"""The bank test's count (tests/support/bank.py) against an API whose reconciler is
still expiring holds at the end of the run, as line b's (60-second holds) are: an
expiry that commits between the listing of the orders and the read of the lines is
no violation, and a line whose counters really differ from its orders still is."""

from collections.abc import Iterator
from typing import Any

from tests.support.bank import Bank
from tests.support.stack import LocalStack

LINE = "bank7-b"
AMOUNTS = {"bank7-00001": 150_000, "bank7-00002": 245_091}


class Api:
    """The two calls the count makes. With `expiring`, the reconciler releases both
    holds together right after the first listing has read them MATCHED."""

    def __init__(self, *, expiring: bool, reserved: int = sum(AMOUNTS.values())) -> None:
        self.orders = [
            {"orderId": i, "amount": a, "reserved": a, "status": "MATCHED", "lineId": LINE}
            for i, a in AMOUNTS.items()
        ]
        self.line = {"reserved": reserved, "drawn": 0, "limit": 78_750_000}
        self.expiring = expiring

    def iter_orders(self, *, max_pages: int) -> Iterator[dict[str, Any]]:
        listed = [dict(order) for order in self.orders]
        if self.expiring:
            self.expiring = False
            for order in self.orders:
                order |= {"status": "EXPIRED", "reserved": 0}
            self.line["reserved"] -= sum(AMOUNTS.values())
        return iter(listed)

    def get_line(self, line_id: str) -> dict[str, Any]:
        return dict(self.line)


def bank(api: Api) -> Bank:
    subject = Bank(LocalStack({}), len(AMOUNTS), 7)
    subject.client = api  # type: ignore[assignment]
    subject.lines = {LINE: {}}
    subject.bodies = {i: {"amount": a} for i, a in AMOUNTS.items()}
    return subject


def test_holds_expired_between_the_listing_and_the_lines_read_are_no_violation() -> None:
    subject = bank(Api(expiring=True))

    audit = subject.audit(subject.settle())

    assert subject.tally.violations == []
    assert audit["statuses"] == {"EXPIRED": 2}
    assert audit["lines"][LINE]["reserved"] == 0


def test_a_line_whose_counter_differs_from_its_orders_is_still_a_violation() -> None:
    subject = bank(Api(expiring=False, reserved=sum(AMOUNTS.values()) - 395_091))

    subject.audit(subject.settle())

    assert subject.tally.violations == [
        f"line {LINE}: reserved, drawn [0, 0]; its orders hold [395091, 0]"
    ]
