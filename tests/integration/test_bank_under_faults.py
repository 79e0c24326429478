"""The bank test: 8 clients over HTTP, random order lifecycles with duplicate
submissions and duplicate and conflicting events, on a local stack of its own whose
functions see 5% of their AWS calls fail as AWS's do (tests/faults, every kind).
At the end, through the API only: every order exists once, each line's reserved and
drawn are the sums of its orders, no line is over its limit, and no answer was a 5xx
other than 503 with Retry-After.

FUNDROUTER_BANK_ORDERS (500 here; `make bench` runs 5,000), FUNDROUTER_BANK_SEED,
FUNDROUTER_BANK_FAULT_RATE, FUNDROUTER_BANK_PORT and FUNDROUTER_BANK_STATE_DIR change
the run; the figures are printed (pytest -s shows them) and kept in the failure.
"""

import os
import time
from collections.abc import Iterator

import pytest

from tests.support.bank import Bank, injected_faults, report
from tests.support.stack import LocalStack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ORDERS = int(os.environ.get("FUNDROUTER_BANK_ORDERS", "500"))
SEED = int(os.environ.get("FUNDROUTER_BANK_SEED", "7"))
RATE = float(os.environ.get("FUNDROUTER_BANK_FAULT_RATE", "0.05"))
PORT = os.environ.get("FUNDROUTER_BANK_PORT", "4642")
STATE_DIR = os.environ.get("FUNDROUTER_BANK_STATE_DIR", ".fundrouter/bank-stack")


@pytest.fixture(scope="module")
def faulty_stack() -> Iterator[LocalStack]:
    yield from running_stack(PORT, STATE_DIR, faults=f"seed={SEED},rate={RATE}")


def test_no_money_is_lost_or_made_under_aws_faults(faulty_stack: LocalStack) -> None:
    started = time.monotonic()
    bank = Bank(faulty_stack, ORDERS, SEED)
    bank.play()
    audit = bank.audit(bank.settle())
    faults = injected_faults(faulty_stack)
    figures = report(bank, audit, faults, time.monotonic() - started)
    print("\n" + figures)

    assert sum(faults.values()) > 0, f"no fault was injected\n{figures}"
    assert not bank.tally.violations, figures
    assert not bank.tally.server_errors, figures
