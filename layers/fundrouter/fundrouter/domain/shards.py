"""Claims on a sharded line (docs/decisions.md, 31): which shard, and what to do when it
has no room. Shared by the DynamoDB store and the simulation's (sim/hot_line.py), which
only say how one attempt is written and how the line is read.

A claim starts on the shard a hash of its (first) order id picks and goes on to the
next shard the cached view gives room; refused there, the line is read (every shard,
consistently) and the claim judged on the sum of the shards, as on an unsharded line:
it goes on a shard that has room now, or, when the line has room but no shard alone
does, on the first shard with room moved into it from the others in the same
transaction (each move conditioned on its source's share and counters). A line closed
because it holds more than its limit (`LineRecord.short`) is reopened, with its
shares set anew, by the first claim it has room for. So a line takes exactly what it
would take unsharded, and an order holds one shard.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from fundrouter.domain.errors import Contended
from fundrouter.domain.lines import LineRecord, Move, borrowing, shard_sequence

# Reads and attempts after the first refusal before the claim counts as contended.
ATTEMPTS: Final = 3

# One attempt on a shard with the moves into it: True committed, a non-empty set the
# positions of orders that had moved, False the line refused (nothing written).
type Attempt = Callable[[LineRecord, int, Sequence[Move]], bool | set[int]]


def claim_on_shards(
    record: LineRecord,
    key: str,
    total: int,
    now: datetime,
    *,
    attempt: Attempt,
    read: Callable[[str], LineRecord | None],
    reshare: Callable[[LineRecord], object],
) -> int | set[int] | LineRecord | None:
    """Claim `total` on one of the line's shards. The shard it went on; the positions
    of orders that had moved; the line as read when it has no room for `total` (the
    caller judges the refusal on it); None when its configuration changed or it is
    gone. `read(day)` reads the line and every shard's usage on `day`; `reshare`
    reopens a closed (short) line that has room again with its shares set anew."""
    day = record.line.day_of(now)
    sequence = shard_sequence(key, record.line.config.shards)
    shard = next((i for i in sequence if record.shards[i].fits(total, day)), None)
    if shard is not None:
        done = attempt(record, shard, ())
        if done:
            return shard if done is True else done
    for _ in range(ATTEMPTS):
        fresh = read(day)
        if fresh is None or fresh.config_version != record.config_version:
            return None
        line = fresh.line
        if line.admission_refusal(line.config.currency, now) or line.capacity_refusal(total, now):
            return fresh
        if fresh.short:
            reshare(fresh)
            continue
        shard = next((i for i in sequence if fresh.shards[i].fits(total, day)), None)
        moves: list[Move] = []
        if shard is None:
            shard = sequence[0]
            moves = borrowing(fresh.shards, shard, total, day) or []
        done = attempt(fresh, shard, moves)
        if done:
            return shard if done is True else done
    raise Contended(f"line {record.line.line_id}: its shards kept moving")
