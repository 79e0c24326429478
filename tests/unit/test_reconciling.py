"""The reconciler at scale, on the in-memory book (tests/support/fakes.py): the
audit's cost per run is set by its slice, not by the number of open loans, every line
is still fully audited, and a backlog of many batches is expired in one run."""

import itertools
from datetime import timedelta

import pytest
from fundrouter.service.auditing import CUT_ORDERS, CUTS_PER_RUN
from fundrouter.service.reconciling import BATCH, Reconciler

from tests.support.fakes import LINES, Clock, InMemoryBook, NoMatcher, book_with, reconciler


def run_reads(book: InMemoryBook, subject: Reconciler, clock: Clock) -> tuple[int, list[str]]:
    clock.now += timedelta(minutes=1)
    before = book.reads
    report = subject.run()
    return book.reads - before, [d.line_id for d in report.drift]


# The most a run may read: per line its audit state, CUTS_PER_RUN listings and cuts
# of CUT_ORDERS orders each plus the line item; and the line listing.
BOUND = LINES * (1 + CUTS_PER_RUN * (2 * CUT_ORDERS + 1)) + LINES


@pytest.mark.parametrize("loans", [1_000, 100_000])
def test_the_audit_reads_per_run_are_set_by_the_slice_not_by_the_open_loans(loans: int) -> None:
    book, clock = book_with(loans), Clock()
    subject = reconciler(book, clock)
    per_line = loans // LINES
    runs = -(-per_line // (CUTS_PER_RUN * CUT_ORDERS))

    reads = [run_reads(book, subject, clock)[0] for _ in range(runs)]

    assert max(reads) <= BOUND
    for state in book.audit.values():  # every line fully audited, each order once
        assert (state.last_pass_orders, state.drift, state.cursor) == (per_line, None, None)
    assert len(book.audit) == LINES


def test_drift_on_a_line_walked_over_many_runs_is_found_by_two_passes() -> None:
    book, clock = book_with(100_000), Clock()
    subject = reconciler(book, clock)
    book.drift("line-2", 5_000)
    first = -(-25_000 // (CUTS_PER_RUN * CUT_ORDERS))  # as fast as a run allows
    second = -(-25_000 // CUT_ORDERS)  # paced: one cut a run, a pass in about 4 hours

    runs = [run_reads(book, subject, clock) for _ in range(first + second)]

    found = [drift for _, drift in runs]
    assert list(itertools.chain(*found)) == ["line-2"]  # at the end of the second pass
    assert found[-1] == ["line-2"]
    assert book.audit["line-2"].unconfirmed is None
    drift = book.audit["line-2"].drift
    assert drift is not None
    assert (drift.reserved - drift.expected_reserved, drift.drawn - drift.expected_drawn) == (
        5_000,
        0,
    )
    paced = max(reads for reads, _ in runs[first + 1 :])
    assert paced <= LINES * (1 + 2 * CUT_ORDERS + 1) + LINES


def test_a_backlog_of_many_batches_is_expired_in_one_run() -> None:
    holds = 10 * BATCH + 7
    book, clock = book_with(1_000, holds), Clock()

    report = reconciler(book, clock).run(deadline=float("inf"))

    assert len(report.expired) == holds
    assert report.batches == 11
    assert all(r.line.counters.reserved == 0 for r in book.lines.values())
    assert report.drift == []


def test_a_run_starts_no_batch_after_its_deadline() -> None:
    book, clock = book_with(0, 3 * BATCH), Clock()
    readings = itertools.count()
    subject = Reconciler(
        book, book, book, NoMatcher(), clock, audit=book, timer=lambda: float(next(readings))
    )

    # One reading a batch: the loop stops at 2.0, leaving the audit its reserve.
    report = subject.run(deadline=12.0)

    assert (report.batches, len(report.expired)) == (2, 2 * BATCH)
    assert report.lines_audited == LINES


def test_the_oldest_audit_is_reported_for_the_overdue_alarm() -> None:
    book, clock = book_with(100_000), Clock()
    subject = reconciler(book, clock)
    ages = []
    for _ in range(30):  # a pass over 25,000 loans takes 26 runs
        clock.now += timedelta(minutes=1)
        ages.append(subject.run().oldest_audit_seconds)

    assert ages[:3] == [0, 60, 120]  # from the first pass's start
    assert ages[25] == 0  # the pass just completed
    assert ages[29] == 240
