"""The rolling audit: each line's counters against the orders that hold them, a
bounded slice per run, resumable, so every line is fully audited within a day at any
number of open loans (docs/decisions.md, section 20).

A slice is one *cut*: the line item and up to CUT_ORDERS of its holdings read in one
transactional read, so the counters and those orders are seen at one point however
busy the line is. A line whose holdings fit one cut is compared exactly at that cut,
every run: orders that left between the listing and the cut are read as they are
(holding nothing), and orders that joined are found by listing again after the cut
and cutting again. A larger line is walked cut by cut over several runs; its pass is
compared at its last cut and, since orders behind the cursor may move during the
pass, its difference counts as drift only when the next pass finds the same one.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from fundrouter.domain.clock import format_timestamp
from fundrouter.domain.orders import RESERVING_STATUSES, Holding, OrderStatus
from fundrouter.service.ports import AuditStore

# TransactGetItems reads at most 100 items: the line item and 99 orders.
CUT_ORDERS: Final = 99
# Cuts per line per run at most: 1,440 runs a day walk 1.4 million holdings of a line.
CUTS_PER_RUN: Final = 10
# A line whose size the last pass measured is walked at the pace of one pass in this
# many runs (12 hours at one run a minute), not faster: the day's goal with room.
PACE_RUNS: Final = 720
# Listings again after a cut that found joiners, before the run leaves the line.
JOINER_RETRIES: Final = 3
MAX_DRIFT_ORDERS: Final = 100


@dataclass(frozen=True)
class Drift:
    line_id: str
    reserved: int
    expected_reserved: int
    drawn: int
    expected_drawn: int
    # The orders holding the line as audited (the first MAX_DRIFT_ORDERS of them).
    orders: tuple[str, ...]

    @property
    def amount(self) -> int:
        return abs(self.reserved - self.expected_reserved) + abs(self.drawn - self.expected_drawn)

    def values(self) -> dict[str, Any]:
        """As stored and as served (camelCase; the line is the item's or the view's)."""
        return {
            "reserved": self.reserved,
            "expectedReserved": self.expected_reserved,
            "drawn": self.drawn,
            "expectedDrawn": self.expected_drawn,
            "orders": list(self.orders),
        }


@dataclass(frozen=True)
class Cut:
    """The line's counters and, of the given orders, those holding it, read at one point."""

    reserved: int
    drawn: int
    holdings: list[Holding]


@dataclass(frozen=True)
class AuditState:
    """One line's audit: the pass under way and the last one completed."""

    line_id: str
    cursor: str | None = None  # where the pass under way resumes; None: start one
    pass_started_at: str | None = None
    reserved: int = 0
    drawn: int = 0
    orders: tuple[str, ...] = ()  # the first MAX_DRIFT_ORDERS ids walked
    order_count: int = 0
    last_full_pass_at: str | None = None
    last_pass_orders: int = 0
    drift: Drift | None = None  # what the last completed pass found
    # A multi-cut pass's difference, drift once the next pass finds the same.
    unconfirmed: Drift | None = None
    # The claim rate (the line's K suggestion): everything ever claimed on the line
    # (matchedTotal, summed over its shards) when last sampled, and the claims a
    # minute since the sample before, estimated as the amount claimed a minute over
    # the mean reservation its holding orders have. No write per claim: a sample is
    # one more attribute of this item, which every run writes anyway.
    sampled_at: str | None = None
    sampled_total: int = 0
    claims_per_minute: int = 0


@dataclass
class AuditRun:
    lines_audited: int = 0
    passes_completed: int = 0
    # Seconds since the least recent line's last full pass ended (a line never fully
    # audited counts from its first pass's start): above a day, a line is overdue.
    oldest_pass_age: int = 0
    drift: list[Drift] = field(default_factory=list)
    failures: list[tuple[str, Exception]] = field(default_factory=list)


@dataclass(frozen=True)
class ClaimSample:
    """What the line's item says now: everything claimed, and its reserving orders."""

    matched_total: int
    reserved: int
    reserving: int


class RollingAudit:
    def __init__(self, store: AuditStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def run(
        self,
        line_ids: list[str],
        out_of_time: Callable[[], bool],
        samples: Mapping[str, ClaimSample] | None = None,
        shard_items: Mapping[str, int] | None = None,
    ) -> AuditRun:
        """A slice of every line, least recently completed first, until out of time;
        each line's claim rate measured against its sample from the last run. A
        sharded line's cut reads its other shard items too (`shard_items`: how many it
        has), so it holds that many fewer orders."""
        run = AuditRun()
        states = self._store.audit_states(line_ids)
        order = sorted(line_ids, key=lambda i: states.get(i, AuditState(i)).last_full_pass_at or "")
        for line_id in order:
            if out_of_time():
                break
            size = CUT_ORDERS - (shard_items or {}).get(line_id, 1) + 1
            try:
                state = self._slice(states.get(line_id, AuditState(line_id)), run, size)
                if samples and line_id in samples:
                    state = self._sampled(state, samples[line_id])
                self._store.save_audit(state)
            except Exception as error:
                run.failures.append((line_id, error))
                continue
            states[line_id] = state
            run.lines_audited += 1
        now = self._clock()
        ages = [_age(now, states[i]) for i in line_ids if i in states]
        run.oldest_pass_age = max(ages, default=0)
        return run

    def _sampled(self, state: AuditState, sample: ClaimSample) -> AuditState:
        now = self._clock()
        rate = state.claims_per_minute
        if state.sampled_at is not None and sample.reserving:
            minutes = (now - datetime.fromisoformat(state.sampled_at)).total_seconds() / 60
            claimed = max(0, sample.matched_total - state.sampled_total)
            mean = sample.reserved / sample.reserving
            rate = round(claimed / mean / minutes) if minutes > 0 and mean > 0 else rate
        return replace(
            state,
            sampled_at=format_timestamp(now),
            sampled_total=sample.matched_total,
            claims_per_minute=rate,
        )

    def _slice(self, state: AuditState, run: AuditRun, size: int = CUT_ORDERS) -> AuditState:
        line_id = state.line_id
        page = None
        if state.cursor is None:
            started = format_timestamp(self._clock())
            state = replace(
                state, pass_started_at=started, reserved=0, drawn=0, orders=(), order_count=0
            )
            page = self._store.holding_keys(line_id, size, None)
            whole = self._whole_line(line_id, *page, size=size)
            if whole is not None:  # the line fits one cut: compared exactly there
                return self._complete(self._add(state, whole), whole, run, exact=True)
        for _ in range(_cuts(state)):
            keys, cursor = page or self._store.holding_keys(line_id, size, state.cursor)
            page = None
            cut = self._store.cut(line_id, keys)
            if cut is None:  # the line is gone
                return AuditState(line_id)
            state = replace(self._add(state, cut), cursor=cursor)
            if cursor is None:
                return self._complete(state, cut, run, exact=False)
        return state

    def _whole_line(
        self, line_id: str, keys: list[tuple[str, str]], more: str | None, *, size: int
    ) -> Cut | None:
        """The whole line in one cut, or None when its holdings need more than one."""
        for _ in range(JOINER_RETRIES):
            if more is not None:
                return None
            cut = self._store.cut(line_id, keys)
            if cut is None:
                return None
            again, more = self._store.holding_keys(line_id, size, None)
            # Every order holding the line at the cut was listed before or is listed now.
            if set(again) <= set(keys):
                return cut
            keys = sorted(set(keys) | set(again))
            if len(keys) > size:
                return None
        return None  # joiners every time: walked in cuts instead

    @staticmethod
    def _add(state: AuditState, cut: Cut) -> AuditState:
        held = cut.holdings
        ids = tuple(f"{h.tenant_id}/{h.order_id}" for h in held)
        return replace(
            state,
            reserved=state.reserved
            + sum(h.reserved for h in held if h.status in RESERVING_STATUSES),
            drawn=state.drawn
            + sum(h.outstanding for h in held if h.status is OrderStatus.DISBURSED),
            orders=(state.orders + ids)[:MAX_DRIFT_ORDERS],
            order_count=state.order_count + len(held),
        )

    def _complete(self, state: AuditState, cut: Cut, run: AuditRun, *, exact: bool) -> AuditState:
        found = None
        if (cut.reserved, cut.drawn) != (state.reserved, state.drawn):
            found = Drift(
                line_id=state.line_id,
                reserved=cut.reserved,
                expected_reserved=state.reserved,
                drawn=cut.drawn,
                expected_drawn=state.drawn,
                orders=tuple(sorted(state.orders)),
            )
        drift, unconfirmed = found, None
        if found is not None and not exact and not _same(found, state.unconfirmed):
            drift, unconfirmed = None, found
        if drift is not None:
            run.drift.append(drift)
        run.passes_completed += 1
        return replace(
            state,
            cursor=None,
            last_full_pass_at=format_timestamp(self._clock()),
            last_pass_orders=state.order_count,
            drift=drift,
            unconfirmed=unconfirmed,
        )


def _cuts(state: AuditState) -> int:
    """The first pass goes as fast as a run allows; later ones at PACE_RUNS."""
    if state.last_full_pass_at is None:
        return CUTS_PER_RUN
    return max(1, min(CUTS_PER_RUN, -(-state.last_pass_orders // (CUT_ORDERS * PACE_RUNS))))


def _age(now: datetime, state: AuditState) -> int:
    since = state.last_full_pass_at or state.pass_started_at
    return 0 if since is None else int((now - datetime.fromisoformat(since)).total_seconds())


def _same(found: Drift, before: Drift | None) -> bool:
    """The same difference between counters and orders (the counters may have moved)."""
    return before is not None and (
        found.reserved - found.expected_reserved,
        found.drawn - found.expected_drawn,
    ) == (before.reserved - before.expected_reserved, before.drawn - before.expected_drawn)


class AuditService:
    """GET /v1/audit: each line's audit as the reconciler left it."""

    def __init__(self, line_ids: Callable[[], list[str]], store: AuditStore) -> None:
        self._line_ids = line_ids
        self._store = store

    def lines(self) -> list[AuditState]:
        line_ids = sorted(self._line_ids())
        states = self._store.audit_states(line_ids)
        return [states.get(line_id, AuditState(line_id)) for line_id in line_ids]
