"""Lending lines: a funder's offer (its configuration), the capacity it has used (its
counters), and the only operations allowed to move those counters.

Every operation is pure: it returns a new Line or raises a LineRefusal and leaves the
line as it was. The DynamoDB adapter enforces the same rules with condition expressions;
keeping them here first lets the rules be tested in microseconds.
"""

import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from fundrouter.domain.clock import Timestamp, format_timestamp
from fundrouter.domain.errors import DomainError, FieldProblem, NotFound
from fundrouter.domain.orders import (
    HOLDING_STATUSES,
    MAX_TERM_MONTHS,
    Amount,
    CamelModel,
    Currency,
    Identifier,
    Order,
    OrderStatus,
)

# Limits cover many orders, so they may exceed MAX_AMOUNT; 10^15 still sums exactly in
# DynamoDB numbers and in every JSON client.
MAX_LIMIT: Final = 10**15
MAX_LIST_ENTRIES: Final = 50
MIN_HOLD_SECONDS: Final = 60
MAX_HOLD_SECONDS: Final = 30 * 24 * 60 * 60
MAX_APR_BPS: Final = 100_000
MAX_PRIORITY: Final = 1_000_000
MAX_WEIGHT: Final = 100
# Capacity shards of one line at most: a change of K writes every shard item and
# checks each one's day item in one transaction (DynamoDB's 100 items).
MAX_SHARDS: Final = 32
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
# Every civil time zone's offset from UTC lies within these (UTC-12 to UTC+14).
_UTC_OFFSETS_HOURS: Final = (-12, 0, 14)
# Names that resolve to whatever the host is set to, so a line would change days with
# the machine it runs on.
_HOST_DEPENDENT_ZONES: Final = frozenset({"localtime", "posixrules"})


def require_unique[T: Hashable](values: list[T]) -> list[T]:
    """A repeated entry in a rule list is almost always a typo; say so instead of
    silently collapsing it."""
    seen: set[T] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"entries must be unique; {value} is repeated")
        seen.add(value)
    return values


def _known_zone(name: str) -> str:
    if name in _HOST_DEPENDENT_ZONES:
        raise ValueError("must name a fixed IANA time zone, not the host's")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError("not an IANA time zone name") from error
    return name


LineId = Identifier
FunderId = Identifier
LimitAmount = Annotated[StrictInt, Field(gt=0, le=MAX_LIMIT)]
Term = Annotated[StrictInt, Field(ge=1, le=MAX_TERM_MONTHS)]
# The same shapes OrderRequest accepts, so every value an order can carry can be listed.
Product = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,16}$")]
CreditGrade = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+-]{1,8}$")]
TimeZoneName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$"),
    AfterValidator(_known_zone),
]


class LineStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class LineConfig(CamelModel):
    """The body of PUT /v1/lines/{lineId}. Empty rule lists mean "any"."""

    funder_id: FunderId
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    currency: Currency
    limit: LimitAmount
    daily_limit: LimitAmount | None = None
    min_amount: Amount
    max_amount: Amount
    terms: Annotated[
        list[Term], Field(max_length=MAX_LIST_ENTRIES), AfterValidator(require_unique)
    ] = Field(default_factory=list)
    products: Annotated[
        list[Product], Field(max_length=MAX_LIST_ENTRIES), AfterValidator(require_unique)
    ] = Field(default_factory=list)
    regions: Annotated[
        list[Region], Field(max_length=MAX_LIST_ENTRIES), AfterValidator(require_unique)
    ] = Field(default_factory=list)
    credit_grades: Annotated[
        list[CreditGrade], Field(max_length=MAX_LIST_ENTRIES), AfterValidator(require_unique)
    ] = Field(default_factory=list)
    apr_bps: Annotated[StrictInt, Field(ge=0, le=MAX_APR_BPS)]
    priority: Annotated[StrictInt, Field(ge=0, le=MAX_PRIORITY)]
    weight: Annotated[StrictInt, Field(ge=0, le=MAX_WEIGHT)]
    hold_seconds: Annotated[StrictInt, Field(ge=MIN_HOLD_SECONDS, le=MAX_HOLD_SECONDS)]
    active_from: Timestamp | None = None
    active_until: Timestamp | None = None
    status: LineStatus = LineStatus.ACTIVE
    timezone: TimeZoneName = DEFAULT_TIMEZONE
    # Capacity shards: the limit and the daily cap spread over this many items, so one
    # hot line takes more than one item's write rate (docs/decisions.md, 31).
    shards: Annotated[StrictInt, Field(ge=1, le=MAX_SHARDS)] = 1

    # Cross-field rules are field validators on the later field, not a model validator,
    # so the error's loc names the field the operator has to change.
    @field_validator("max_amount")
    @classmethod
    def _max_amount_not_below_min(cls, max_amount: int, info: ValidationInfo) -> int:
        min_amount = info.data.get("min_amount")
        if min_amount is not None and max_amount < min_amount:
            raise ValueError(f"must not be below minAmount {min_amount}")
        return max_amount

    @field_validator("active_until")
    @classmethod
    def _window_not_empty(
        cls, active_until: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        active_from = info.data.get("active_from")
        if active_from is not None and active_until is not None and active_until <= active_from:
            raise ValueError(f"must be after activeFrom {format_timestamp(active_from)}")
        return active_until


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("moment must carry a time zone")


def local_day(config: LineConfig, moment: datetime) -> str:
    """The calendar day of `moment` where the line's funder counts its daily cap."""
    _require_aware(moment)
    return moment.astimezone(ZoneInfo(config.timezone)).date().isoformat()


def possible_days(moment: datetime) -> list[str]:
    """Every local day some time zone is in at `moment` (two or three), so a line's
    usage can be read with the line itself, before its time zone is known."""
    _require_aware(moment)
    utc = moment.astimezone(UTC)
    return sorted({(utc + timedelta(hours=h)).date().isoformat() for h in _UTC_OFFSETS_HOURS})


def _require_day(day: str) -> None:
    try:
        valid = date.fromisoformat(day).isoformat() == day
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"day must be a calendar date YYYY-MM-DD, got {day!r}")


def _require_positive(amount: int) -> None:
    # Amounts are validated at the edge; a non-positive one here is a bug, not a refusal.
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")


@dataclass(frozen=True)
class LineCounters:
    """What a line has handed out. Each day's usage is its own stored item keyed by
    line and local date, so nothing is ever reset; only the days loaded appear here."""

    reserved: int = 0
    drawn: int = 0
    daily_used: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reserved < 0 or self.drawn < 0:
            raise ValueError("reserved and drawn are never negative")
        for day, used in self.daily_used.items():
            _require_day(day)
            if used < 0:
                raise ValueError(f"usage on {day} is negative")
        # Read-only, and without zero days, so a claim and its release give back counters
        # equal to the ones before.
        kept = {day: used for day, used in sorted(self.daily_used.items()) if used}
        object.__setattr__(self, "daily_used", MappingProxyType(kept))

    def __hash__(self) -> int:
        return hash((self.reserved, self.drawn, tuple(self.daily_used.items())))

    def used_on(self, day: str) -> int:
        return self.daily_used.get(day, 0)


class LineRefusal(DomainError):
    """A capacity operation the line refused. `reason` is the line-free phrase that
    routing decisions show as well."""

    code = "line_refused"

    def __init__(self, line_id: str, reason: str, fields: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(f"line {line_id}: {reason}", fields)
        self.line_id = line_id
        self.reason = reason


class LinePaused(LineRefusal):
    code = "line_paused"

    def __init__(self, line_id: str) -> None:
        super().__init__(line_id, f"line is {LineStatus.PAUSED}")


class OutsideValidityWindow(LineRefusal):
    code = "outside_validity_window"

    def __init__(self, line_id: str, boundary: datetime, *, not_yet_open: bool) -> None:
        edge = "opens" if not_yet_open else "ended"
        super().__init__(line_id, f"outside validity window: {edge} {format_timestamp(boundary)}")
        self.boundary = boundary
        self.not_yet_open = not_yet_open


class CurrencyMismatch(LineRefusal):
    code = "currency_mismatch"

    def __init__(self, line_id: str, currency: str, line_currency: str) -> None:
        super().__init__(line_id, f"currency {currency} not offered ({line_currency})")
        self.currency = currency
        self.line_currency = line_currency


class InsufficientCapacity(LineRefusal):
    code = "insufficient_capacity"

    def __init__(self, line_id: str, available: int, amount: int) -> None:
        super().__init__(line_id, f"insufficient capacity: available {available} < amount {amount}")
        self.available = available
        self.amount = amount


class DailyLimitReached(LineRefusal):
    code = "daily_limit_reached"

    def __init__(self, line_id: str, day: str, room: int, amount: int) -> None:
        super().__init__(line_id, f"daily limit reached: room {room} on {day} < amount {amount}")
        self.day = day
        self.room = room
        self.amount = amount


class CounterUnderflow(LineRefusal):
    """Giving back more than the line holds: a duplicate or a bookkeeping error upstream,
    refused rather than letting a counter go negative."""

    code = "counter_underflow"

    def __init__(self, line_id: str, counter: str, held: int, amount: int) -> None:
        super().__init__(line_id, f"counter underflow: {counter} {held} < amount {amount}")
        self.counter = counter
        self.held = held
        self.amount = amount


class DrawExceedsReservation(LineRefusal):
    code = "draw_exceeds_reservation"

    def __init__(self, line_id: str, reserved_amount: int, drawn_amount: int) -> None:
        super().__init__(
            line_id,
            f"cannot draw {drawn_amount}: above the reservation of {reserved_amount}",
            (FieldProblem("amount", f"above the reserved amount {reserved_amount}"),),
        )
        self.reserved_amount = reserved_amount
        self.drawn_amount = drawn_amount


@dataclass(frozen=True)
class Line:
    """One lending line: its id (from the URL, not the body), configuration and counters."""

    line_id: str
    config: LineConfig
    counters: LineCounters = field(default_factory=LineCounters)

    @property
    def available(self) -> int:
        """Negative when an operator lowered the limit below what is held."""
        return self.config.limit - self.counters.reserved - self.counters.drawn

    def day_of(self, moment: datetime) -> str:
        return local_day(self.config, moment)

    def daily_room(self, day: str) -> int | None:
        """What may still be claimed on `day`; None when the line has no daily cap."""
        if self.config.daily_limit is None:
            return None
        return self.config.daily_limit - self.counters.used_on(day)

    def admission_refusal(self, currency: str, now: datetime) -> LineRefusal | None:
        """Why the line takes no claim in `currency` at `now` whatever the amount."""
        _require_aware(now)
        config = self.config
        if config.status is not LineStatus.ACTIVE:
            return LinePaused(self.line_id)
        if config.active_from is not None and now < config.active_from:
            return OutsideValidityWindow(self.line_id, config.active_from, not_yet_open=True)
        if config.active_until is not None and now >= config.active_until:
            return OutsideValidityWindow(self.line_id, config.active_until, not_yet_open=False)
        if currency != config.currency:
            return CurrencyMismatch(self.line_id, currency, config.currency)
        return None

    def capacity_refusal(self, amount: int, now: datetime) -> LineRefusal | None:
        """Why `amount` does not fit in what is left overall or today."""
        if amount > self.available:
            return InsufficientCapacity(self.line_id, self.available, amount)
        day = self.day_of(now)
        room = self.daily_room(day)
        if room is not None and amount > room:
            return DailyLimitReached(self.line_id, day, room, amount)
        return None

    def takes(self, amounts: Sequence[int], currency: str, now: datetime) -> int | None:
        """How many of `amounts`, claimed one after another, the line takes before the
        first it refuses for room; None when it takes no claim in `currency` now."""
        if self.admission_refusal(currency, now) is not None:
            return None
        total = 0
        for taken, amount in enumerate(amounts):
            if self.capacity_refusal(total + amount, now) is not None:
                return taken
            total += amount
        return len(amounts)

    def claim(self, amount: int, currency: str, now: datetime) -> Self:
        """Reserve `amount` for an order matched at `now`; it counts against the local
        day of `now`, which the caller keeps to give it back on release."""
        _require_positive(amount)
        refusal = self.admission_refusal(currency, now) or self.capacity_refusal(amount, now)
        if refusal is not None:
            raise refusal
        day = self.day_of(now)
        counters = self.counters
        return replace(
            self,
            counters=replace(
                counters,
                reserved=counters.reserved + amount,
                daily_used={**counters.daily_used, day: counters.used_on(day) + amount},
            ),
        )

    def release(self, amount: int, claim_day: str) -> Self:
        """Give back a reservation (cancel, decline, expiry) and its share of the day it
        was claimed on, so the daily cap counts only orders that went ahead."""
        _require_positive(amount)
        _require_day(claim_day)
        counters = self.counters
        if amount > counters.reserved:
            raise CounterUnderflow(self.line_id, "reserved", counters.reserved, amount)
        used = counters.used_on(claim_day)
        if amount > used:
            raise CounterUnderflow(self.line_id, f"used on {claim_day}", used, amount)
        return replace(
            self,
            counters=replace(
                counters,
                reserved=counters.reserved - amount,
                daily_used={**counters.daily_used, claim_day: used - amount},
            ),
        )

    def draw(self, reserved_amount: int, drawn_amount: int, claim_day: str | None = None) -> Self:
        """Disburse: the whole reservation leaves `reserved`, `drawn_amount` of it
        becomes outstanding and the rest is free again, on the line and on the day it
        was claimed, so the day's usage counts what went ahead that day."""
        _require_positive(reserved_amount)
        _require_positive(drawn_amount)
        if drawn_amount > reserved_amount:
            raise DrawExceedsReservation(self.line_id, reserved_amount, drawn_amount)
        counters = self.counters
        if reserved_amount > counters.reserved:
            raise CounterUnderflow(self.line_id, "reserved", counters.reserved, reserved_amount)
        daily_used = dict(counters.daily_used)
        freed = reserved_amount - drawn_amount
        if claim_day is not None and freed:
            _require_day(claim_day)
            used = counters.used_on(claim_day)
            if freed > used:
                raise CounterUnderflow(self.line_id, f"used on {claim_day}", used, freed)
            daily_used[claim_day] = used - freed
        return replace(
            self,
            counters=replace(
                counters,
                reserved=counters.reserved - reserved_amount,
                drawn=counters.drawn + drawn_amount,
                daily_used=daily_used,
            ),
        )

    def has_room(self, amount: int) -> bool:
        return amount <= self.available

    def draw_late(self, amount: int, claim_day: str | None) -> Self:
        """Money lent after its hold was given back (expired, cancelled): it is out, so
        it is drawn whether or not the line has room (has_room says which), and counts
        again on the day it was claimed. Never refused: nothing lent is unrecorded."""
        _require_positive(amount)
        counters = self.counters
        daily_used = dict(counters.daily_used)
        if claim_day is not None:
            _require_day(claim_day)
            daily_used[claim_day] = counters.used_on(claim_day) + amount
        return replace(
            self,
            counters=replace(counters, drawn=counters.drawn + amount, daily_used=daily_used),
        )

    def restore(self, amount: int) -> Self:
        """Repayment: a revolving line gets the repaid principal back."""
        _require_positive(amount)
        counters = self.counters
        if amount > counters.drawn:
            raise CounterUnderflow(self.line_id, "drawn", counters.drawn, amount)
        return replace(self, counters=replace(counters, drawn=counters.drawn - amount))


# Claims a second one shard takes with room to spare: a transactional write costs two
# of an item's 1,000 write units a second, and group commit claims several orders in
# one (decision 28's simulation: about 2,400 a shard at K = 8).
CLAIMS_PER_SHARD: Final = 1_000


def suggested_shards(claims_per_minute: int) -> int:
    """The K that keeps each shard under CLAIMS_PER_SHARD at the measured rate."""
    needed = -(-claims_per_minute // (60 * CLAIMS_PER_SHARD))
    return min(MAX_SHARDS, max(1, needed))


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` integer shares that differ by one at most, the larger first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def shard_sequence(key: str, shards: int) -> list[int]:
    """The shards a claim tries, in turn: the one a hash of `key` (the order id) picks,
    then the next ones round. A stable hash (crc32), so every container agrees."""
    first = zlib.crc32(key.encode()) % shards
    return [(first + i) % shards for i in range(shards)]


@dataclass(frozen=True)
class Shard:
    """One capacity item of a sharded line: its share of the limit (`cap`) and of the
    daily cap (`day_cap`, None without one) and what it holds. The shares of a line's
    shards sum to its limit and daily cap; its counters are their sums."""

    index: int
    cap: int
    day_cap: int | None = None
    reserved: int = 0
    drawn: int = 0
    daily_used: Mapping[str, int] = field(default_factory=dict)

    @property
    def held(self) -> int:
        return self.reserved + self.drawn

    @property
    def room(self) -> int:
        return self.cap - self.held

    def day_room(self, day: str) -> int | None:
        return None if self.day_cap is None else self.day_cap - self.daily_used.get(day, 0)

    def fits(self, amount: int, day: str) -> bool:
        day_room = self.day_room(day)
        return amount <= self.room and (day_room is None or amount <= day_room)


@dataclass(frozen=True)
class Move:
    """Room moved from one shard to another: `cap` of the limit, `day_cap` of the
    daily cap (on the shares; what each shard holds stays)."""

    source: int
    target: int
    cap: int = 0
    day_cap: int = 0


def borrowing(shards: Sequence[Shard], target: int, amount: int, day: str) -> list[Move] | None:
    """The moves that give shard `target` room for `amount` from the others (largest
    room first), when the shards together have it; None when they do not."""
    need = amount - shards[target].room
    day_room = shards[target].day_room(day)
    need_day = 0 if day_room is None else amount - day_room
    moves = []
    others = sorted((s for s in shards if s.index != target), key=lambda s: -s.room)
    for shard in others:
        cap = min(max(shard.room, 0), max(need, 0))
        day_cap = min(max(shard.day_room(day) or 0, 0), max(need_day, 0))
        if cap or day_cap:
            moves.append(Move(shard.index, target, cap, day_cap))
            need, need_day = need - cap, need_day - day_cap
    return moves if need <= 0 and need_day <= 0 else None


def moved(shards: Sequence[Shard], move: Move) -> tuple[Shard, ...]:
    """The shards once `move` committed (their shares; what each holds stays)."""
    changed = list(shards)
    for index, sign in ((move.source, -1), (move.target, 1)):
        shard = changed[index]
        day_cap = None if shard.day_cap is None else shard.day_cap + sign * move.day_cap
        changed[index] = replace(shard, cap=shard.cap + sign * move.cap, day_cap=day_cap)
    return tuple(changed)


def rebalancing(shards: Sequence[Shard], active: int, day: str) -> list[Move]:
    """Moves that even out the room of the first `active` shards and empty the room
    of the others (removed by a smaller K: their holdings stay until released). None
    while every active shard has a quarter of its even share and no removed shard
    has room. With less room than held in all (a lowered limit), the room left is
    spread so that no shard has room while another is short."""
    moves = _evened([s.room for s in shards], active)
    days = [s.day_room(day) for s in shards]
    if all(room is not None for room in days):
        day_moves = _evened([room or 0 for room in days], active)
        moves += [Move(m.source, m.target, day_cap=m.cap) for m in day_moves]
    return moves


def _evened(rooms: list[int], active: int) -> list[Move]:
    total = sum(rooms)
    if total >= 0:
        targets = split(total, active) + [0] * (len(rooms) - active)
        balanced = (
            all(r >= 0 for r in rooms)
            and all(r == 0 for r in rooms[active:])
            and all(4 * r >= t for r, t in zip(rooms, targets[:active], strict=False))
        )
        if balanced:
            return []
    else:  # short in all: no room anywhere while a shard is short
        if all(r <= 0 for r in rooms):
            return []
        targets, left = [], sum(r for r in rooms if r > 0)
        for r in rooms:
            give = min(left, -r) if r < 0 else 0
            left -= give
            targets.append(0 if r > 0 else r + give)
    surplus = [r - t for r, t in zip(rooms, targets, strict=True)]
    moves = []
    sources = [i for i, s in enumerate(surplus) if s > 0]
    for target in (i for i, s in enumerate(surplus) if s < 0):
        while surplus[target] < 0 and sources:
            source = sources[0]
            amount = min(surplus[source], -surplus[target])
            moves.append(Move(source, target, amount))
            surplus[source] -= amount
            surplus[target] += amount
            if surplus[source] == 0:
                sources.pop(0)
    return moves


class StaleLineConfig(DomainError):
    """The line's configuration changed between the read and the write: read again."""

    code = "line_config_changed"

    def __init__(self, line_id: str) -> None:
        super().__init__(f"line {line_id} changed while it was being updated; retry")
        self.line_id = line_id


class LineCurrencyLocked(DomainError):
    code = "line_currency_locked"

    def __init__(self, line_id: str) -> None:
        super().__init__(f"line {line_id} holds capacity: its currency cannot change now")


class LineNotFound(NotFound):
    code = "line_not_found"
    what = "line"


@dataclass(frozen=True)
class LineRecord:
    """A line as stored: the line plus the configuration version its writes condition
    on, so a write based on an older read is refused."""

    line: Line
    config_version: int
    created_at: str
    updated_at: str
    # Everything ever claimed on the line: the WEIGHTED strategy's measure of share.
    matched_total: int = 0
    # How many orders hold capacity on the line, by status (HOLDING_STATUSES).
    orders: Mapping[str, int] = field(default_factory=dict)
    # A sharded line's capacity items (index 0 is the line item itself); empty: the
    # line item alone holds the counters (K = 1, never sharded). The line's counters
    # are their sums; shards past config.shards were removed and only drain.
    shards: tuple[Shard, ...] = ()
    # Closed to claims on every shard: a limit or daily cap set below what the line
    # holds (or a late disbursement past the limit) left room on some shard while
    # others are short; reopened with shares set anew once the line has room.
    short: bool = False
    # Claims a minute the reconciler measured on the line over its last runs (None:
    # not read with this view, or never measured); see service.auditing.
    claims_per_minute: int | None = None

    def shard(self, index: int | None) -> Shard:
        """The shard an order holds (None: the line item), as read."""
        if not self.shards:
            config, counters = self.line.config, self.line.counters
            return Shard(
                0, config.limit, config.daily_limit, counters.reserved, counters.drawn,
                counters.daily_used,
            )  # fmt: skip
        return self.shards[index or 0]


def holding_moves(before: Order, after: Order) -> dict[str, dict[OrderStatus, int]]:
    """How an order's move from `before` to `after` changes its lines' counts of
    holding orders: by line, the change of each status's count (none: no entry)."""
    moves: dict[str, dict[OrderStatus, int]] = {}
    for order, step in ((before, -1), (after, 1)):
        if order.status in HOLDING_STATUSES and order.line_id is not None:
            counts = moves.setdefault(order.line_id, {})
            counts[order.status] = counts.get(order.status, 0) + step
    kept = {line: {s: n for s, n in counts.items() if n} for line, counts in moves.items()}
    return {line: counts for line, counts in kept.items() if counts}
