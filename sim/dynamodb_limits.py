"""A simulated DynamoDB, in virtual time, for what limits one hot lending line.

Model (each figure is an assumption, printed by sim.hot_line):
- A table's items sit on partitions by key range (the position of an item is the
  hash of its partition key, then its sort key). Each partition takes 1,000 WCU and
  3,000 RCU per second, metered in whole-second windows with no burst credit.
- A write costs ceil(size / 1 KB) WCU, twice that inside a transaction; an update is
  billed on its item's size. A strongly consistent read costs ceil(size / 4 KB) RCU.
- A transaction is throttled (ThrottlingError, nothing billed) when a partition it
  touches has not its whole transactional cost left this second; else it holds its
  items for `hold` seconds from the moment it is sent, and another transaction
  touching a held item is cancelled with TransactionConflict (never queued).
  Cancelled by a conflict or a condition, it is billed its prepare phase (once per
  item). Its writes are visible as soon as it is evaluated.
- Adaptive capacity: a partition whose demand in a window of `split_window` seconds
  reached `split_at` of its WCU rate is split at the demand-weighted median of its
  keys into two partitions, each with the full rate; never between the versions of
  one item, so one item never gets more than one partition's 1,000 WCU/s.
- Virtual time: callers run in threads of which exactly one runs at a time, handed
  over in (time, sequence) order by `Scheduler`, so a seed gives the same run.
"""

import bisect
import heapq
import math
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WCU_PER_SECOND = 1_000
RCU_PER_SECOND = 3_000
type Key = tuple[str, str, str]  # table, pk, sk


class Stopped(BaseException):
    """Raised in a parked thread when the run is over (not an Exception: the code
    under test catches those)."""


class Scheduler:
    """The virtual clock. `spawn` starts a thread that runs only when handed the turn;
    `wait` parks the running thread until the clock reaches now + seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, threading.Semaphore]] = []
        self._seq = 0
        self._turn = threading.Semaphore(0)
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def _push(self, at: float, gate: threading.Semaphore) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, gate))

    def spawn(self, body: Callable[[], None], at: float = 0.0) -> None:
        gate = threading.Semaphore(0)

        def run() -> None:
            gate.acquire()
            try:
                if not self._stopped:
                    body()
            except Stopped:
                pass
            finally:
                self._turn.release()

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()
        self._push(at, gate)

    def wait(self, seconds: float) -> None:
        gate = threading.Semaphore(0)
        self._push(self.now + max(seconds, 0.0), gate)
        self._turn.release()
        gate.acquire()
        if self._stopped:
            raise Stopped

    def run(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            self.now, _, gate = heapq.heappop(self._queue)
            gate.release()
            self._turn.acquire()
        self.now, self._stopped = until, True
        while self._queue:  # release every parked thread: it raises Stopped and ends
            heapq.heappop(self._queue)[2].release()
            self._turn.acquire()
        for thread in self._threads:
            thread.join()


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item in AttributeValue form: names plus values."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return math.ceil(len(str(inner).lstrip("-").replace(".", "")) / 2) + 1
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    return 1  # BOOL, NULL


def write_units(size: int, *, transactional: bool) -> int:
    return math.ceil(size / 1024) * (2 if transactional else 1)


def read_units(size: int) -> int:
    return math.ceil(size / 4096)


@dataclass
class Partition:
    low: tuple[int, str]  # the first key position it holds
    second: int = -1  # the metering window
    wcu: int = 0
    rcu: int = 0
    heat: defaultdict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    heat_since: float = 0.0


@dataclass(frozen=True)
class Write:
    """One item of a transaction: its key and size, a condition on the current state
    (checked when the transaction is evaluated) and the change it makes if all hold."""

    key: Key
    size: int
    check: Callable[[], bool] = lambda: True
    apply: Callable[[], None] = lambda: None


class Dynamo:
    def __init__(
        self,
        clock: Scheduler,
        partitions: dict[str, int],
        hold: Callable[[int], float],
        split_window: float = 0.2,
        split_at: float = 0.8,
    ) -> None:
        self.clock = clock
        self.hold = hold  # seconds a transaction of n items holds them
        self.split_window, self.split_at = split_window, split_at
        self.parts = {
            table: [Partition((i * 2**32 // n, "")) for i in range(n)]
            for table, n in partitions.items()
        }
        self.lows = {table: [p.low for p in parts] for table, parts in self.parts.items()}
        self.held_until: dict[Key, float] = {}
        self.item_wcu: defaultdict[tuple[Key, int], int] = defaultdict(int)  # per second
        self.counts: defaultdict[str, int] = defaultdict(int)

    @staticmethod
    def position(key: Key) -> tuple[int, str]:
        return zlib.crc32(key[1].encode()), key[2]

    def partition(self, key: Key) -> Partition:
        table = key[0]
        return self.parts[table][bisect.bisect_right(self.lows[table], self.position(key)) - 1]

    def transact(self, writes: list[Write]) -> list[str | None]:
        """[] when committed; else one cancellation code per item (None: no reason).
        Throttling is decided first, on the whole transactional cost, so what a
        cancelled one is billed always fits too."""
        now = self.clock.now
        self.counts["transactions"] += 1
        parts = [self.partition(w.key) for w in writes]
        demand: defaultdict[int, int] = defaultdict(int)
        for w, part in zip(writes, parts, strict=True):
            demand[id(part)] += write_units(w.size, transactional=True)
        short = {id(p) for p in parts if not self._room(p, demand[id(p)], 0, now)}
        codes: list[str | None] = ["ThrottlingError" if id(p) in short else None for p in parts]
        if not short:
            codes = ["TransactionConflict" if self.held_until.get(w.key, -1.0) > now else None
                     for w in writes]  # fmt: skip
        if not any(codes):
            codes = [None if w.check() else "ConditionalCheckFailed" for w in writes]
        if any(codes):
            self.counts[next(c for c in codes if c)] += 1
            if short:
                for w in writes:  # throttled demand is heat too: it drives splits
                    self._heat(w, now)
            else:
                self._bill(writes, once=True, now=now)
            return codes
        for w in writes:
            w.apply()
            self.held_until[w.key] = now + self.hold(len(writes))
        self._bill(writes, once=False, now=now)
        self.counts["committed"] += 1
        return []

    def read(self, keys: list[tuple[Key, int]]) -> bool:
        """Strongly consistent reads of (key, size); False when throttled (nothing read)."""
        now = self.clock.now
        demand: defaultdict[int, int] = defaultdict(int)
        parts = {}
        for key, size in keys:
            part = self.partition(key)
            parts[id(part)] = part
            demand[id(part)] += read_units(size)
        if not all(self._room(parts[pid], 0, units, now) for pid, units in demand.items()):
            return False
        for pid, units in demand.items():
            parts[pid].rcu += units
        return True

    def _room(self, part: Partition, wcu: int, rcu: int, now: float) -> bool:
        second = int(now)
        if part.second != second:
            part.second, part.wcu, part.rcu = second, 0, 0
        return part.wcu + wcu <= WCU_PER_SECOND and part.rcu + rcu <= RCU_PER_SECOND

    def _bill(self, writes: list[Write], *, once: bool, now: float) -> None:
        for w in writes:
            units = write_units(w.size, transactional=not once)
            part = self.partition(w.key)
            self._room(part, 0, 0, now)
            part.wcu += units
            self.item_wcu[(w.key, int(now))] += units
            self._heat(w, now, units)

    def _heat(self, w: Write, now: float, units: int | None = None) -> None:
        part = self.partition(w.key)
        if now - part.heat_since >= self.split_window:
            hot = sum(part.heat.values()) >= self.split_at * WCU_PER_SECOND * self.split_window
            if hot and len(part.heat) > 1:
                self._split(w.key[0], part)
                return
            part.heat, part.heat_since = defaultdict(int), now
        part.heat[self.position(w.key)] += units or write_units(w.size, transactional=True)

    def _split(self, table: str, part: Partition) -> None:
        """Two partitions at the demand-weighted median key (never inside one item);
        each starts with the second's usage so far, so no item gains within it."""
        keys = sorted(part.heat)
        total, run, cut = sum(part.heat.values()), 0, 1
        for i, position in enumerate(keys[:-1]):
            run += part.heat[position]
            cut = i + 1
            if run * 2 >= total:
                break
        parts = self.parts[table]
        twin = Partition(keys[cut], part.second, part.wcu, part.rcu, heat_since=self.clock.now)
        part.heat, part.heat_since = defaultdict(int), self.clock.now
        parts.insert(next(i for i, p in enumerate(parts) if p is part) + 1, twin)
        self.lows[table] = [p.low for p in parts]
        self.counts[f"splits:{table}"] += 1
