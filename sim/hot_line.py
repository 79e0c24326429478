"""Claims per second on ONE hot lending line, over K capacity shards, with and without
group commit: the real MatchService (with LineCatalog) over a simulated MatchStore and
line source on the simulated DynamoDB of sim.dynamodb_limits, in virtual time.

    .venv/bin/python -m sim.hot_line --seed 7

The store writes what DynamoMatchStore writes (fundrouter.persistence.matching): per
claim the line's counters (configuration version, ACTIVE, window, held + amount <=
limit), its day's usage (used + amount <= daily cap), each order (still RECEIVED at
the version read) and the history entries the order sheds; item sizes come from the
product's own encoders. At K > 1 the line is sharded as the product shards it
(decision 31): its limit and daily cap split over K shard items, each with its own
day item, and the product's own fundrouter.domain.shards.claim_on_shards picks the
shard (a hash of the first order id, the next shard with room, a read and a move of
room from other shards when the line fits but no shard does); this store only writes
each attempt on the shard's conditions (configuration version, shares pinned as
read, held + amount <= share, the day's usage under the daily share) and reads the
line. Cancellations by conflict or throttling are
retried as fundrouter.persistence.retries does (4 attempts, full jitter from 50 ms),
then raise Contended/Unavailable; the stream redelivers from the first failed record
(ReportBatchItemFailures), up to 5 retries. The other assumptions are `Model`'s fields:
per batch one invocation overhead and a CPU cost per order, then the real match_all
(group commit) or match one by one (without); every request waits a seeded lognormal
round trip. Not simulated: the intake's own writes (the Orders table is taken as warm,
`order_partitions`), the reconciler's rebalance between shards (once a minute; the
line here never fills, so shards never run short within a run).
"""

import argparse
import math
import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from fundrouter.domain.errors import Contended, Unavailable
from fundrouter.domain.lifecycle import matched, unmatched
from fundrouter.domain.lines import (
    InsufficientCapacity,
    Line,
    LineConfig,
    LineCounters,
    LineRecord,
    LineRefusal,
    Move,
    Shard,
    split,
)
from fundrouter.domain.orders import Decision, Order, OrderRequest
from fundrouter.domain.shards import claim_on_shards
from fundrouter.persistence.codec import to_item
from fundrouter.persistence.history import spill_items
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.orders import order_item, order_pk
from fundrouter.persistence.retries import CONDITION_FAILED, DEFAULT_BACKOFF
from fundrouter.service.matching import GROUP_LIMIT, LineCatalog, MatchReport, MatchService
from fundrouter.service.ports import CatalogMarker, ClaimAttempt, ClaimResult, Grouped, Room

from sim.dynamodb_limits import Dynamo, Key, Scheduler, Write, item_bytes, write_units

START: Final = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
LINES, ORDERS, LINE_ID, TENANT = "lines", "orders", "hot", "shop"
MAX_RETRIES: Final = 5  # the mapping's MaximumRetryAttempts


@dataclass(frozen=True)
class Model:
    seed: int = 7
    offered: float = 20_000.0  # orders/s arriving (Poisson), all ranking the hot line first
    warmup: float = 1.0  # s simulated before measuring (the tables adapt)
    measure: float = 2.0  # s measured
    drain: float = 1.0  # s after the last arrival for the backlog to be decided
    workers: int = 32  # concurrent batches: stream shards x ParallelizationFactor
    batch: int = 100  # the matcher mapping's BatchSize (template.yaml)
    stream_lag: float = 0.1  # s from the intake's write to the record on the stream
    poll: float = 0.25  # s between polls of an idle stream shard
    invoke: float = 0.005  # s per batch: the invocation
    cpu: float = 0.0003  # s per order: ranking and encoding in the function
    latency: float = 0.008  # s median TransactWriteItems round trip (lognormal), +0.1 ms/item
    read_latency: float = 0.004  # s median read round trip
    hold: float = 0.004  # s a transaction holds its items, +0.05 ms/item
    line_partitions: int = 4  # the Lines table starts as a new on-demand table
    order_partitions: int = 128  # the Orders table, warmed for the intake rate
    split_window: float = 0.2  # s of heat before a split (AWS: minutes; steady state here)
    limit: int = 10**15
    daily_limit: int | None = 10**14


class SimStore:
    """The MatchStore port (and the LineSource the catalog reads) over the simulated
    tables, for one line of K shards."""

    def __init__(self, model: Model, shards: int, clock: Scheduler, rng: random.Random) -> None:
        self.model, self.k, self.clock, self.rng = model, shards, clock, rng
        self.dynamo = Dynamo(
            clock,
            {LINES: model.line_partitions, ORDERS: model.order_partitions},
            hold=lambda n: model.hold + 0.00005 * n,
            split_window=model.split_window,
        )
        self.config = line_config(model.limit, model.daily_limit).model_copy(
            update={"shards": shards}
        )
        self.caps, self.reserved = split(model.limit, shards), [0] * shards
        cap = self.config.daily_limit
        self.day_caps = None if cap is None else split(cap, shards)
        self.used: dict[tuple[int, str], int] = {}
        self.matched_total = self.n_matched = 0
        self.orders: dict[str, Order] = {}
        self.decided: dict[str, float] = {}  # order id -> when its decision was answered
        self.claim_times: list[float] = []
        self.order_size = 0
        line_item: dict[str, Any] = {
            "config": self.config.model_dump(mode="json", by_alias=True),
            "kind": "LINE",
        }
        line_item |= dict.fromkeys(["reserved", "drawn", "held", "matchedTotal"], 10**12)
        line_item |= {"configVersion": 1, "nMatched": 10**6, "lineId": LINE_ID}
        line_item |= dict.fromkeys(["createdAt", "updatedAt"], "2026-11-01T00:00:00.000Z")
        self.line_size = item_bytes(to_item(line_item | {"pk": "LINE#hot#S#00", "sk": "LINE"}))
        day_item = {"used": 10**12, "expiresAt": 1_800_000_000, "lineId": LINE_ID, "day": "d"}
        self.day_size = item_bytes(to_item(day_item | {"pk": "LINE#hot#S#00#DAY#2026-11-24"}))
        self.repo = DynamoLineRepository(client=None, table=LINES)  # type: ignore[arg-type]

    # ------------------------------------------------------------ state as read

    def record(self) -> LineRecord:
        """The line as its views read it: the sum of its shards."""
        used: dict[str, int] = {}
        for (_, day), amount in self.used.items():
            used[day] = used.get(day, 0) + amount
        counters = LineCounters(sum(self.reserved), 0, used)
        shards = () if self.k == 1 else tuple(
            Shard(i, self.caps[i], None if self.day_caps is None else self.day_caps[i],
                  self.reserved[i], 0, {d: u for (s, d), u in self.used.items() if s == i})
            for i in range(self.k)
        )  # fmt: skip
        return LineRecord(
            Line(LINE_ID, self.config, counters), 1, "2026-11-01T00:00:00.000Z",
            "2026-11-01T00:00:00.000Z", self.matched_total, {"MATCHED": self.n_matched},
            shards,
        )  # fmt: skip

    def _keys(self, shard: int, day: str) -> tuple[Key, Key]:
        pk = f"LINE#{LINE_ID}" + (f"#S#{shard}" if shard else "")  # as shard_key
        return (LINES, pk, "LINE"), (LINES, f"{pk}#DAY#{day}", "DAY")

    def list_lines(self) -> list[LineRecord]:
        return [self._read_line([self.config_day()])]

    def get(self, line_id: str, days: list[str]) -> LineRecord | None:
        return self._read_line(days) if line_id == LINE_ID else None

    def _read_line(self, days: list[str]) -> LineRecord:
        """Every shard item and its day items, read (and billed) on their partitions."""
        keys = [(self._keys(s, "")[0], self.line_size) for s in range(self.k)]
        keys += [(self._keys(s, d)[1], self.day_size) for s in range(self.k) for d in days]
        self._read(keys)
        return self.record()

    def get_routing(self, tenant_id: str) -> None:
        self._read([((LINES, f"TENANT#{tenant_id}", "ROUTING"), 100)])

    def catalog_marker(self) -> CatalogMarker:
        self._read([((LINES, "CATALOG", "VERSION"), 100)])
        return CatalogMarker(0)

    def config_day(self) -> str:
        return Line(LINE_ID, self.config).day_of(self.now())

    def now(self) -> datetime:
        return START + timedelta(seconds=self.clock.now)

    # ------------------------------------------------------------ the port

    def claim(
        self, order: Order, record: LineRecord, now: datetime, expires: datetime, decision: Decision
    ) -> ClaimAttempt:
        if record.shards:
            return self._claim_sharded(order, record, now, expires, decision)
        try:
            self.repo.claim_items(record, order.amount, now)
        except LineRefusal as too_big:  # above the daily cap itself, as the adapter says
            return ClaimAttempt(ClaimResult.LINE_REFUSED, too_big)
        moved = self.claim_together([(order, decision)], record, now, expires)
        if moved == {0}:
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        if moved is None:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, self._refusal(order.amount, now))
        return ClaimAttempt(ClaimResult.CLAIMED)

    def _claim_sharded(
        self, order: Order, record: LineRecord, now: datetime, expires: datetime, decision: Decision
    ) -> ClaimAttempt:
        """As DynamoMatchStore._claim_sharded."""
        try:
            found = self._on_shards([(order, decision)], record, now, expires)
        except LineRefusal as closed:
            return ClaimAttempt(ClaimResult.LINE_REFUSED, closed)
        if isinstance(found, int):
            return ClaimAttempt(ClaimResult.CLAIMED)
        if isinstance(found, set):
            return ClaimAttempt(ClaimResult.ORDER_MOVED)
        refusal = None if found is None else found.line.capacity_refusal(order.amount, now)
        return ClaimAttempt(ClaimResult.LINE_REFUSED, refusal or self._refusal(order.amount, now))

    def claim_together(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> set[int] | Room | None:
        total = sum(order.amount for order, _ in group)
        if record.shards:  # as DynamoMatchStore._together_sharded
            amounts = [order.amount for order, _ in group]
            found = self._on_shards(group, record, now, expires)
            if isinstance(found, LineRecord):
                takes = found.line.takes(amounts, self.config.currency, now)
                return None if takes is None else Room(takes)
            return set() if isinstance(found, int) else found
        try:
            self.repo.claim_items(record, total, now)  # the adapter's own refusal of a sum
        except LineRefusal:
            return None
        line = record.line
        pairs = [
            (o, matched(o, line_id=LINE_ID, funder_id=line.config.funder_id, now=now,
                        hold_expires_at=expires, claim_day=line.day_of(now), decision=d))
            for o, d in group
        ]  # fmt: skip
        codes = self._send(self._claim_writes(0, record, total, now, pairs))
        if not codes:
            self._answered(pairs)
            self.claim_times += [self.clock.now] * len(pairs)
            return set()
        moved = {i for i, code in enumerate(codes[2:]) if code == CONDITION_FAILED}
        return moved or None

    def _on_shards(
        self, group: Grouped, record: LineRecord, now: datetime, expires: datetime
    ) -> int | set[int] | LineRecord | None:
        """The product's choice of shard (claim_on_shards) over this store's writes."""
        total = sum(order.amount for order, _ in group)
        config = record.line.config

        def attempt(line: LineRecord, shard: int, moves: Any) -> bool | set[int]:
            pairs = [
                (o, matched(o, line_id=LINE_ID, funder_id=config.funder_id, now=now,
                            hold_expires_at=expires, claim_day=line.line.day_of(now),
                            decision=d, shard=shard))
                for o, d in group
            ]  # fmt: skip
            codes = self._send(self._shard_writes(line, shard, moves, total, now, pairs))
            if not codes:
                self._answered(pairs)
                self.claim_times += [self.clock.now] * len(pairs)
                return True
            orders = codes[2 : 2 + len(pairs)]
            return {i for i, code in enumerate(orders) if code == CONDITION_FAILED} or False

        def read(day: str) -> LineRecord:
            return self._read_line([day])

        return claim_on_shards(
            record, group[0][0].order_id, total, now, attempt=attempt, read=read,
            reshare=lambda _: None,  # never short here: the line is never lowered
        )  # fmt: skip

    def mark_unmatched(self, order: Order, now: datetime, decision: Decision) -> bool:
        pairs = [(order, unmatched(order, now, decision))]
        if self._send(self._order_writes(pairs)):
            return False
        self._answered(pairs)
        return True

    def _answered(self, pairs: list[tuple[Order, Order]]) -> None:
        """The orders' decisions as the business system sees them: once answered."""
        for order, _ in pairs:
            self.decided.setdefault(order.order_id, self.clock.now)

    # ------------------------------------------------------------ the writes

    def _claim_writes(
        self, shard: int, record: LineRecord, total: int, now: datetime, pairs: list[Any]
    ) -> list[Write]:
        day = record.line.day_of(now)
        line_key, day_key = self._keys(shard, day)
        admitted = record.line.admission_refusal(self.config.currency, now) is None

        def line_ok() -> bool:
            return (
                record.config_version == 1
                and admitted
                and (self.reserved[shard] <= self.caps[shard] - total)
            )

        def line_apply() -> None:
            self.reserved[shard] += total
            self.matched_total += total
            self.n_matched += len(pairs)

        def day_ok() -> bool:
            caps = self.day_caps
            return caps is None or self.used.get((shard, day), 0) <= caps[shard] - total

        def day_apply() -> None:
            self.used[(shard, day)] = self.used.get((shard, day), 0) + total

        return [
            Write(line_key, self.line_size, line_ok, line_apply),
            Write(day_key, self.day_size, day_ok, day_apply),
            *self._order_writes(pairs),
        ]

    def _shard_writes(  # noqa: PLR0917 - a claim's parts
        self,
        line: LineRecord,
        index: int,
        moves: list[Move],
        total: int,
        now: datetime,
        pairs: list[Any],
    ) -> list[Write]:
        """What DynamoLineRepository._shard_claim and shard_moves write."""
        day = line.line.day_of(now)
        shard = line.shards[index]
        more, day_more = sum(m.cap for m in moves), sum(m.day_cap for m in moves)
        line_key, day_key = self._keys(index, day)

        def pinned(i: int, seen: Shard) -> bool:
            days = self.day_caps
            return self.caps[i] == seen.cap and (days is None or days[i] == seen.day_cap)

        def line_ok() -> bool:
            return pinned(index, shard) and self.reserved[index] <= shard.cap + more - total

        def line_apply() -> None:
            self.reserved[index] += total
            self.caps[index] += more
            if self.day_caps is not None:
                self.day_caps[index] += day_more
            self.matched_total += total
            self.n_matched += len(pairs)

        def day_ok() -> bool:
            room = None if shard.day_cap is None else shard.day_cap + day_more - total
            return room is None or self.used.get((index, day), 0) <= room

        def day_apply() -> None:
            self.used[(index, day)] = self.used.get((index, day), 0) + total

        writes = [
            Write(line_key, self.line_size, line_ok, line_apply),
            Write(day_key, self.day_size, day_ok, day_apply),
            *self._order_writes(pairs),
        ]
        return writes + [w for move in moves for w in self._move_writes(line, move, day)]

    def _move_writes(self, line: LineRecord, move: Move, day: str) -> list[Write]:
        """A move of room out of its source shard (DynamoLineRepository.shard_moves)."""
        source = line.shards[move.source]
        source_key, source_day = self._keys(move.source, day)
        days = self.day_caps

        def ok() -> bool:
            pinned = self.caps[move.source] == source.cap and (
                days is None or days[move.source] == source.day_cap
            )
            day_fits = source.day_cap is None or (
                self.used.get((move.source, day), 0) <= source.day_cap - move.day_cap
            )
            return pinned and day_fits and self.reserved[move.source] <= source.cap - move.cap

        def apply() -> None:
            self.caps[move.source] -= move.cap
            if days is not None:
                days[move.source] -= move.day_cap

        writes = [Write(source_key, self.line_size, ok, apply)]
        if move.day_cap:
            writes.append(Write(source_day, self.day_size))
        return writes

    def _order_writes(self, pairs: list[tuple[Order, Order]]) -> list[Write]:
        writes = []
        for before, after in pairs:
            pk = order_pk(before.tenant_id, before.order_id)

            def ok(before: Order = before) -> bool:
                stored = self.orders[before.order_id]
                return (stored.status, stored.version) == (before.status, before.version)

            def apply(after: Order = after) -> None:
                self.orders[after.order_id] = after

            size = item_bytes(order_item(after))
            self.order_size = max(self.order_size, size)
            writes.append(Write((ORDERS, pk, "ORDER"), size, ok, apply))
        for before, after in pairs:
            for put in spill_items(ORDERS, before, after):
                item = put["Put"]["Item"]
                writes.append(Write((ORDERS, item["pk"]["S"], item["sk"]["S"]), item_bytes(item)))
        return writes

    def _send(self, writes: list[Write]) -> list[str | None]:
        """retries.transact: [] committed, the codes when a condition refused it."""

        def once() -> list[str | None] | None:
            codes = self.dynamo.transact(writes)
            self._pause(self.model.latency, 0.0001 * len(writes))
            return None if codes and CONDITION_FAILED not in codes else codes

        return self._retried(once, Contended)

    def _read(self, keys: list[tuple[Key, int]]) -> None:
        def once() -> bool | None:
            answered = self.dynamo.read(keys)
            self._pause(self.model.read_latency, 0.0)
            return answered or None

        self._retried(once, Unavailable)

    def _retried[T](self, once: Callable[[], T | None], error: type[Exception]) -> T:
        backoff = DEFAULT_BACKOFF
        for attempt in range(backoff.attempts):
            answer = once()
            if answer is not None:
                return answer
            if attempt < backoff.attempts - 1:
                ceiling = min(backoff.cap_seconds, backoff.base_seconds * 2**attempt)
                self.clock.wait(self.rng.uniform(0, ceiling))
        raise error()

    def _pause(self, median: float, extra: float) -> None:
        self.clock.wait(median * self.rng.lognormvariate(0, 0.3) + extra)

    def _refusal(self, amount: int, now: datetime) -> LineRefusal:
        line = self.record().line
        room = max(limit - held for limit, held in zip(self.caps, self.reserved, strict=True))
        return line.capacity_refusal(amount, now) or InsufficientCapacity(LINE_ID, room, amount)


def line_config(limit: int, daily_limit: int | None) -> LineConfig:
    return LineConfig.model_validate(
        {"funderId": "bank-a", "name": "Promotion line", "currency": "CNY", "limit": limit,
         "dailyLimit": daily_limit, "minAmount": 10_000, "maxAmount": 5_000_000,
         "aprBps": 990, "priority": 1, "weight": 50, "holdSeconds": 900}
    )  # fmt: skip


def new_order(number: int, at: float, amount: int) -> Order:
    request = OrderRequest.model_validate(
        {"orderId": f"o-{number:07d}", "amount": amount, "currency": "CNY", "termMonths": 12,
         "product": "installment", "customer": {"id": f"c-{number}", "region": "GD"}}
    )  # fmt: skip
    return Order.received(TENANT, request, START + timedelta(seconds=at))


@dataclass(frozen=True)
class Figures:
    shards: int
    grouped: bool
    claims_per_second: float
    latencies: tuple[float, float, float]  # ms p50, p95, p99: intake to decided
    undecided: int
    counts: dict[str, int]
    max_item_wcu: int


def simulate(model: Model, shards: int, *, grouped: bool) -> tuple[Figures, SimStore]:
    """One run: arrivals for warmup + measure seconds, matched by `model.workers`
    concurrent stream batches of the real MatchService."""
    rng = random.Random(f"{model.seed}:{shards}:{grouped}")  # noqa: S311 - a model, not secrecy
    clock = Scheduler()
    store = SimStore(model, shards, clock, rng)
    stream = Stream(model, store, random.Random(model.seed))  # noqa: S311 - one arrival stream
    for queue in stream.queues:
        clock.spawn(partial(stream.worker, queue, grouped=grouped), at=model.stream_lag)
    clock.run(model.warmup + model.measure + model.drain)
    return _figures(model, store, stream.arrivals, shards, grouped), store


class Stream:
    """The Orders stream as the matcher gets it: each order on one of `workers`
    queues by a hash of its key, visible `stream_lag` after its intake. The same
    arrivals (times, amounts) for a seed in every configuration."""

    def __init__(self, model: Model, store: SimStore, rng: random.Random) -> None:
        self.model, self.store, self.clock = model, store, store.clock
        at, end = 0.0, model.warmup + model.measure
        self.arrivals: list[tuple[float, int]] = []
        while (at := at + rng.expovariate(model.offered)) < end:
            self.arrivals.append((at, rng.randrange(10_000, 5_000_001)))
        self.queues: list[deque[tuple[int, int]]] = [deque() for _ in range(model.workers)]
        for number in range(len(self.arrivals)):
            self.queues[zlib.crc32(f"o-{number:07d}".encode()) % model.workers].append((number, 0))
        self.images: dict[int, Order] = {}

    def worker(self, queue: deque[tuple[int, int]], *, grouped: bool) -> None:
        model, clock, store = self.model, self.clock, self.store
        catalog = LineCatalog(store, monotonic=lambda: clock.now)
        service = MatchService(catalog, store, store.now)
        while True:
            ready: list[tuple[int, int]] = []
            while queue and len(ready) < model.batch and self.visible(queue[0][0]):
                ready.append(queue.popleft())
            if not ready:
                clock.wait(model.poll)
                continue
            orders = [self.image(number) for number, _ in ready]
            clock.wait(model.invoke + model.cpu * len(orders))
            with service.batch():
                reports = (
                    service.match_all(orders) if grouped else [alone(service, o) for o in orders]
                )
            failed = next((i for i, r in enumerate(reports) if isinstance(r, Exception)), None)
            if failed is not None:  # redelivered from the first failed record
                again = [(n, tries + 1) for n, tries in ready[failed:] if tries < MAX_RETRIES]
                queue.extendleft(reversed(again))

    def visible(self, number: int) -> bool:
        return self.arrivals[number][0] + self.model.stream_lag <= self.clock.now

    def image(self, number: int) -> Order:
        """The record's image: the order as received (also when redelivered)."""
        if number not in self.images:
            order = new_order(number, *self.arrivals[number])
            self.images[number] = self.store.orders[order.order_id] = order
        return self.images[number]


def alone(service: MatchService, order: Order) -> MatchReport | Exception:
    try:
        return service.match(order)
    except Exception as error:  # the record fails, as the handler reports it
        return error


def _figures(
    model: Model, store: SimStore, arrivals: list[tuple[float, int]], shards: int, grouped: bool
) -> Figures:
    end = model.warmup + model.measure
    claims = sum(1 for t in store.claim_times if model.warmup <= t < end)
    # Orders that arrived while measured, intake to decided; one still undecided
    # `drain` seconds after the last arrival counts as waiting forever (">end").
    waits = sorted(
        store.decided.get(f"o-{number:07d}", math.inf) - at
        for number, (at, _) in enumerate(arrivals)
        if at >= model.warmup
    )
    undecided = sum(1 for wait in waits if wait == math.inf)

    def pct(p: float) -> float:
        return waits[min(len(waits) - 1, int(p * len(waits)))] * 1000 if waits else math.inf

    per_item = max(store.dynamo.item_wcu.values(), default=0)
    counts = dict(store.dynamo.counts)
    return Figures(
        shards, grouped, claims / model.measure, (pct(0.5), pct(0.95), pct(0.99)), undecided,
        counts, per_item,
    )  # fmt: skip


def report(model: Model, ks: list[int]) -> list[Figures]:
    print("Simulated DynamoDB limits on one hot line (sim/hot_line.py), assumptions:")
    print("  " + ", ".join(f"{f.name}={getattr(model, f.name)}" for f in fields(model)))
    print(
        "  per partition 1,000 WCU/s and 3,000 RCU/s in whole seconds, no burst credit;"
        " transactional writes 2x ceil(size/1 KB); conflicting transactions cancelled;"
        f" retries {DEFAULT_BACKOFF.attempts} attempts, full jitter from"
        f" {DEFAULT_BACKOFF.base_seconds * 1000:.0f} ms; group commit up to {GROUP_LIMIT}"
        f" orders (within a batch of {model.batch}); intake writes not simulated."
        "\n  undecided: orders arrived while measured, not decided by the end;"
        " >end: that percentile is among them (the backlog grows: saturated)."
    )
    print(
        "  workers   K  group   claims/s   p50 ms   p95 ms   p99 ms  undecided   tx/s"
        "  conflict%  throttled%  splits  max item WCU/s"
    )
    runs = [(model, k, grouped) for k in ks for grouped in (False, True)]
    runs += [(replace(model, workers=w), 1, True) for w in (1, 2, 4, 8, 16) if w < model.workers]
    results = []
    for variant, k, grouped in runs:
        fig, store = simulate(variant, k, grouped=grouped)
        results.append(fig)
        tx, counts = max(fig.counts.get("transactions", 0), 1), fig.counts
        ms = " ".join(f"{p:8,.0f}" if p < math.inf else "    >end" for p in fig.latencies)
        print(
            f"  {variant.workers:7d} {k:3d}  {'yes' if grouped else 'no':>5}"
            f" {fig.claims_per_second:10,.0f} {ms} {fig.undecided:10,d}"
            f" {tx / (model.warmup + model.measure + model.drain):6,.0f}"
            f" {100 * counts.get('TransactionConflict', 0) / tx:10.1f}"
            f" {100 * counts.get('ThrottlingError', 0) / tx:11.1f}"
            f" {counts.get('splits:lines', 0):7d} {fig.max_item_wcu:15,d}"
        )
    sizes = {"line shard": store.line_size, "day": store.day_size, "order": store.order_size}
    units = [f"{n} {b:,} B ({write_units(b, transactional=True)})" for n, b in sizes.items()]
    print("  item sizes (WCU a transactional write): " + ", ".join(units))
    goals: list[tuple[str, Callable[[Figures], bool]]] = [
        ("at least 10,000 claims/s", lambda f: f.claims_per_second >= 10_000),
        (f"keeping up with {model.offered:,.0f} orders/s", lambda f: f.undecided == 0),
    ]
    for label, fits in goals:
        met = [f for f in results[: 2 * len(ks)] if fits(f)]
        first = min(met, key=lambda f: (f.shards, not f.grouped)) if met else None
        print(f"  goal {label} on one line: " + (
            f"first with K = {first.shards}, group commit {'on' if first.grouped else 'off'}"
            if first else "not at any K simulated"))  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shards", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--measure", type=float, default=Model.measure)
    parser.add_argument("--workers", type=int, default=Model.workers)
    parser.add_argument("--batch", type=int, default=Model.batch)
    args = parser.parse_args()
    model = Model(seed=args.seed, measure=args.measure, workers=args.workers, batch=args.batch)
    report(model, args.shards)


if __name__ == "__main__":
    main()
