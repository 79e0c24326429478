"""Section 5: how far one line scales on AWS. Arithmetic from DynamoDB's published
limits and the sizes of the items a claim writes (section 3's, on moto)."""

import math
from typing import Any

from common import table

PARTITION_WCU_PER_S = 1000  # per partition, and so per item
KB = 1024
SHARDS = (1, 2, 4, 8, 16)


def transactional_wcu(size: int) -> int:
    """A write inside a transaction costs 2 WCU per started KB of the item."""
    return 2 * max(1, math.ceil(size / KB))


def report(sizes: Any) -> None:
    print(f"NOT a measurement: {PARTITION_WCU_PER_S:,} WCU/s a partition (so an item), 2 WCU a")
    print("KB in a transaction; a claim is one TransactWriteItems of three items:")
    rows = [
        (what, key, f"~{size} B", f"{transactional_wcu(size)} WCU", note)
        for what, key, size, note in (
            ("line", "LINE#<line>, LINE", sizes.line, "per item: no split lifts it"),
            ("day", "LINE#<line>#DAY#<date>", sizes.day, "its own partition"),
            ("order", "T#<tenant>#O#<order>", sizes.order, "one per order: spread out"),
        )
    ]
    table(("item", "key", "size", "cost", "claims/s on its partition"), rows)
    per_line = PARTITION_WCU_PER_S / transactional_wcu(sizes.line)
    per_day = PARTITION_WCU_PER_S / transactional_wcu(sizes.day)
    print(f"so ~{per_line:,.0f} claims/s a line (the day item alone: {per_day:,.0f}), less")
    print("under contention (TransactionConflict cancels, never queues); releases, draws and")
    print("restores spend the same line item's budget.")
    print("Not built: K shard items LINE#<line>#S<k> (limit/K each, own day items; a claim")
    print("picks one by the order id's hash, falls back to another) on K partitions:")
    print("  " + ", ".join(f"K={k}: {k * per_line:,.0f}" for k in SHARDS) + " claims/s;")
    print("  costs: fragmented capacity, rebalancing, counters summed over K, table quota.")
