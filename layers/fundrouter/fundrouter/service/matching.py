"""Matching: pick the line for a RECEIVED order and claim its capacity atomically.

The ranking is pure (fundrouter.domain.routing); the claim is one transaction whose
conditions re-check everything the ranking assumed, so a stale read can cost an
extra attempt but can never over-allocate a line or match an order twice.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from fundrouter.domain.errors import Contended, DomainError
from fundrouter.domain.lines import LineCounters, LineRecord, LineRefusal, StaleLineConfig
from fundrouter.domain.orders import Candidate, Decision, Order, OrderStatus
from fundrouter.domain.routing import (
    DEFAULT_POLICY,
    Evaluation,
    OrderFacts,
    Outcome,
    Ranking,
    RoutingPolicy,
    Strategy,
    evaluate,
    rank,
    refusal_outcome,
)
from fundrouter.domain.routing import decision as routing_decision
from fundrouter.service.ports import (
    CatalogMarker,
    ClaimAttempt,
    ClaimResult,
    LineSource,
    MatchStore,
    Room,
)

# Lines refused on counters alone are still tried when the counters came from the
# cache: a cached counter may say "full" about a line that has room again.
_CAPACITY_OUTCOMES: Final = frozenset({Outcome.INSUFFICIENT_CAPACITY, Outcome.DAILY_LIMIT_REACHED})
# Orders claimed in one transaction at most: two writes each at most (the order and a
# history spill) and the line's and the day's, within DynamoDB's 100.
GROUP_LIMIT: Final = 45


class LineCatalog:
    """Lines and routing policies, cached in the container for a few seconds. Only
    the configuration is relied on from the cache; counters are re-checked by every
    claim's conditions. Before an order is refused, the change marker says whether
    the cached view predates a line or policy change (make_current)."""

    def __init__(
        self,
        source: LineSource,
        ttl_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lines: list[LineRecord] = []
        self._lines_read_at: float | None = None
        self._policies: dict[str, tuple[float, RoutingPolicy]] = {}
        # The marker read just before the cached view: the view is at least this new.
        self._marker = CatalogMarker(-1)
        self._unread_marker: CatalogMarker | None = None
        self._in_batch = False
        self._checked = False

    def lines(self) -> tuple[list[LineRecord], bool]:
        """The lines, and whether they were read just now (fresh counters)."""
        now = self._monotonic()
        if self._lines_read_at is not None and now - self._lines_read_at < self._ttl:
            return self._lines, False
        self._adopt(self._unread_marker or self._source.catalog_marker())
        self._unread_marker = None
        self._lines = self._pinned(self._source.list_lines())
        self._lines_read_at = now
        return self._lines, True

    def routing(self, tenant_id: str) -> RoutingPolicy:
        now = self._monotonic()
        cached = self._policies.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        policy = self._source.get_routing(tenant_id) or DEFAULT_POLICY
        self._policies[tenant_id] = (now, policy)
        return policy

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within one batch the marker is read at most once: every order in the batch
        was written before the batch began, so one look after that is enough."""
        self._in_batch, self._checked = True, False
        try:
            yield
        finally:
            self._in_batch = False

    def make_current(self) -> bool:
        """True when a line or policy changed since the cached view was read: the view
        is dropped and the caller ranks again. One small consistent read."""
        if self._in_batch and self._checked:
            return False
        self._checked = True
        marker = self._source.catalog_marker()
        if marker.version == self._marker.version:
            return False
        self._unread_marker, self._lines_read_at = marker, None  # the next lines() reads
        return True

    def refreshed(self, line_id: str, day: str) -> LineRecord | None:
        """One line read again after its configuration changed under a claim."""
        self._lines_read_at = None
        return self._source.get(line_id, [day])

    def _adopt(self, marker: CatalogMarker) -> None:
        if marker.version != self._marker.version:
            self._policies.clear()  # a policy cached before this marker may predate it
        self._marker = marker

    def _pinned(self, records: list[LineRecord]) -> list[LineRecord]:
        """The lines index lags the table: a line the marker says changed that the
        index shows older (or not at all) is read from the table itself."""
        by_id = {record.line.line_id: record for record in records}
        for line_id, version in self._marker.recent.items():
            known = by_id.get(line_id)
            if known is None or known.config_version < version:
                current = self._source.get(line_id, [])
                if current is not None:
                    by_id[line_id] = current
        return list(by_id.values())


class MatchOutcome(StrEnum):
    MATCHED = "MATCHED"
    UNMATCHED = "UNMATCHED"
    ALREADY_HANDLED = "ALREADY_HANDLED"


@dataclass
class MatchReport:
    outcome: MatchOutcome
    line_id: str | None = None
    attempts: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    strategy: str = DEFAULT_POLICY.strategy.value


class MatchService:
    def __init__(
        self, catalog: LineCatalog, store: MatchStore, clock: Callable[[], datetime]
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock

    def batch(self) -> AbstractContextManager[None]:
        """Match a batch of orders (one stream batch, one reconciler run)."""
        return self._catalog.batch()

    def match(self, order: Order) -> MatchReport:
        """Match `order` as read at its version. Safe to call again for the same
        delivery: the order's condition makes every repeat a no-op. An order is only
        refused on a view of lines and policies at least as new as the latest change."""
        if order.status is not OrderStatus.RECEIVED:
            return MatchReport(MatchOutcome.ALREADY_HANDLED)
        now = self._clock()
        report = self._decide(order, now, MatchReport(MatchOutcome.UNMATCHED))
        if report.outcome is MatchOutcome.UNMATCHED and self._catalog.make_current():
            report = self._decide(
                order, now, MatchReport(MatchOutcome.UNMATCHED, attempts=report.attempts)
            )
        if report.outcome is not MatchOutcome.UNMATCHED:
            return report
        decision = routing_decision(Strategy(report.strategy), report.candidates)
        report.candidates = decision.candidates
        if not self._store.mark_unmatched(order, now, decision):
            report.outcome = MatchOutcome.ALREADY_HANDLED
        return report

    def match_all(self, orders: Sequence[Order]) -> list[MatchReport | Exception]:
        """A stream batch, in arrival order, decided as `match` one by one decides it:
        a run of consecutive orders whose first choice is the same line is claimed in
        one transaction when the line takes them all, as it would have one after
        another; otherwise (or if the write fails) each is matched alone. One report,
        or the error that order's match raised, per order."""
        results: list[MatchReport | Exception] = []
        while len(results) < len(orders):
            run = self._run(orders[len(results) : len(results) + GROUP_LIMIT])
            if len(run) > 1:
                results += self._together(run)
            else:
                results.append(self._alone(orders[len(results)]))
        return results

    def _run(self, orders: Sequence[Order]) -> list["_Choice"]:
        """The first orders that all choose the same line first (each order once: a
        transaction writes an item once)."""
        run: list[_Choice] = []
        now = self._clock()
        for order in orders:
            choice = self._choice(order, now)
            if choice is None or (run and _version(choice) != _version(run[0])):
                break
            key = (order.tenant_id, order.order_id)
            if any((c.order.tenant_id, c.order.order_id) == key for c in run):
                break
            run.append(choice)
        return run

    def _choice(self, order: Order, now: datetime) -> "_Choice | None":
        """None when the order is not to be claimed in a group: not RECEIVED, no line
        to try, or its ranking failed (its own match then reports the error)."""
        if order.status is not OrderStatus.RECEIVED:
            return None
        try:
            plan = self._plan(order, now)
        except Exception:
            return None
        if not plan.to_try:
            return None
        record = plan.by_id[plan.to_try[0]]
        decision = _decision(plan.policy.strategy, plan.candidates, plan.to_try[0])
        return _Choice(order, record, decision, now)

    def _together(self, run: list["_Choice"]) -> list[MatchReport | Exception]:
        """The run claimed in one transaction; if the line has room for only its first
        orders, those together; what is left, one at a time after them, in order. A
        run whose line stays contended past the retries fails whole (its records are
        delivered again): one at a time, each order would meet the same conflict, and
        its own retries would add to it (decision 28)."""
        record, now = run[0].record, run[0].now
        hold = now + timedelta(seconds=record.line.config.hold_seconds)
        done: dict[int, MatchReport | Exception] = {}
        pending = list(range(len(run)))
        while len(pending) > 1:
            try:
                group = [(run[i].order, run[i].decision) for i in pending]
                moved = self._store.claim_together(group, record, now, hold)
            except Contended as contended:
                done |= {i: contended for i in range(len(run)) if i not in done}
                break
            except Exception:  # each order's own match says what is wrong with it
                moved = None
            if moved is None:
                break
            if isinstance(moved, Room):
                if not 1 < moved.orders < len(pending):
                    break
                pending = pending[: moved.orders]
                continue
            done |= {pending[m]: MatchReport(MatchOutcome.ALREADY_HANDLED) for m in moved}
            if not moved:
                done |= {i: run[i].claimed() for i in pending}
            pending = [i for i in pending if i not in done]
        for i in range(len(run)):
            if i not in done:
                done[i] = self._alone(run[i].order)
        return [done[i] for i in range(len(run))]

    def _alone(self, order: Order) -> MatchReport | Exception:
        try:
            return self.match(order)
        except Exception as error:
            return error

    def _plan(self, order: Order, now: datetime) -> "_Plan":
        """The lines ranked for the order, and those to try in turn."""
        records, fresh = self._catalog.lines()
        policy = self._catalog.routing(order.tenant_id)
        by_id = {record.line.line_id: record for record in records}
        facts = OrderFacts.of(order)
        ranking = rank(
            [record.line for record in records],
            facts,
            policy,
            now,
            matched_volume={line_id: r.matched_total for line_id, r in by_id.items()},
            excluded_line_ids=frozenset(order.declined_line_ids),
        )
        candidates = {e.line_id: e.as_candidate() for e in ranking.candidates}
        to_try = [line.line_id for line in ranking.lines]
        if not fresh:
            to_try += self._full_in_cache(
                ranking, by_id=by_id, facts=facts, policy=policy, now=now, order=order
            )
        return _Plan(policy, by_id, candidates, to_try)

    def _decide(self, order: Order, now: datetime, report: MatchReport) -> MatchReport:
        """Rank the lines and claim the first that takes the order; UNMATCHED (with
        every candidate's reason) is only reported here, not yet written."""
        plan = self._plan(order, now)
        policy, by_id, candidates = plan.policy, plan.by_id, plan.candidates
        report.strategy = policy.strategy.value
        for line_id in plan.to_try:
            attempt = self._claim(
                order,
                record=by_id[line_id],
                now=now,
                policy=policy,
                candidates=candidates,
                report=report,
            )
            if attempt.result is ClaimResult.CLAIMED:
                report.outcome, report.line_id = MatchOutcome.MATCHED, line_id
                report.candidates = _decision(policy.strategy, candidates, line_id).candidates
                return report
            if attempt.result is ClaimResult.ORDER_MOVED:
                report.outcome = MatchOutcome.ALREADY_HANDLED
                return report
            candidates[line_id] = _refused(line_id, attempt.refusal)
        report.candidates = list(candidates.values())
        return report

    def _claim(
        self,
        order: Order,
        *,
        record: LineRecord,
        now: datetime,
        policy: RoutingPolicy,
        candidates: dict[str, Candidate],
        report: MatchReport,
    ) -> ClaimAttempt:
        """Claim on one line; once more on a fresh read if its configuration changed
        since it was ranked (the claim's condition pins the configuration version),
        provided the order still fits the new configuration."""
        line_id = record.line.line_id
        decision = _decision(policy.strategy, candidates, line_id)
        report.attempts += 1
        hold = now + timedelta(seconds=record.line.config.hold_seconds)
        attempt = self._store.claim(order, record, now, hold, decision)
        if not isinstance(attempt.refusal, StaleLineConfig):
            return attempt
        fresh = self._catalog.refreshed(line_id, record.line.day_of(now))
        if fresh is None:
            return attempt
        verdict = evaluate(
            fresh.line,
            OrderFacts.of(order),
            now,
            frozenset(order.declined_line_ids),
            policy=policy,
        )
        if not verdict.eligible and verdict.outcome not in _CAPACITY_OUTCOMES:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, _NoLongerEligible(verdict))
        report.attempts += 1
        hold = now + timedelta(seconds=fresh.line.config.hold_seconds)
        return self._store.claim(order, fresh, now, hold, decision)

    @staticmethod
    def _full_in_cache(
        ranking: Ranking,
        *,
        by_id: dict[str, LineRecord],
        facts: OrderFacts,
        policy: RoutingPolicy,
        now: datetime,
        order: Order,
    ) -> list[str]:
        """Lines the cached counters call full, in the policy's own order (ranked as
        if empty): their claim's condition decides on the real counters."""
        full = [
            by_id[e.line_id].line for e in ranking.candidates if e.outcome in _CAPACITY_OUTCOMES
        ]
        emptied = [replace(line, counters=LineCounters()) for line in full]
        again = rank(
            emptied,
            facts,
            policy,
            now,
            matched_volume={line.line_id: by_id[line.line_id].matched_total for line in full},
            excluded_line_ids=frozenset(order.declined_line_ids),
        )
        return [line.line_id for line in again.lines]


def _version(choice: "_Choice") -> tuple[str, int]:
    return choice.record.line.line_id, choice.record.config_version


@dataclass(frozen=True)
class _Plan:
    policy: RoutingPolicy
    by_id: dict[str, LineRecord]
    candidates: dict[str, Candidate]
    to_try: list[str]


@dataclass(frozen=True)
class _Choice:
    """An order, the line it would claim first, and its decision if it does."""

    order: Order
    record: LineRecord
    decision: Decision
    now: datetime

    def claimed(self) -> MatchReport:
        line_id = self.record.line.line_id
        return MatchReport(
            MatchOutcome.MATCHED,
            line_id=line_id,
            attempts=1,
            candidates=self.decision.candidates,
            strategy=self.decision.strategy,
        )


class _NoLongerEligible(DomainError):
    """The line's new configuration no longer takes the order."""

    def __init__(self, verdict: Evaluation) -> None:
        super().__init__(verdict.reason or verdict.outcome.value)
        self.code = verdict.outcome.value


def _refused(line_id: str, refusal: DomainError | None) -> Candidate:
    outcome = refusal_outcome(refusal) if isinstance(refusal, LineRefusal) else None
    return Candidate(
        line_id=line_id,
        outcome="REFUSED",
        code=outcome.value if outcome else getattr(refusal, "code", None),
        reason=refusal.reason
        if isinstance(refusal, LineRefusal)
        else getattr(refusal, "message", None),
    )


def _decision(strategy: Strategy, candidates: dict[str, Candidate], claimed: str) -> Decision:
    """The decision as it will read if this claim succeeds: the claimed line, what
    was refused before it, and every other candidate with its outcome."""
    entries = [
        Candidate(line_id=claimed, outcome="CLAIMED") if c.line_id == claimed else c
        for c in candidates.values()
    ]
    return routing_decision(strategy, entries)
