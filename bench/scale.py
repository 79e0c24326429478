"""`make bench` section 5: how far one line scales on AWS. Arithmetic from DynamoDB's
published limits and the sizes of the items a claim writes (estimated from the items
section 3 wrote on moto); not a measurement.
"""

import math
from typing import Any

PARTITION_WCU_PER_S = 1000  # per partition, and so per item
KB = 1024
SHARDS = (1, 2, 4, 8, 16)


def transactional_wcu(size: int) -> int:
    """A write inside a transaction costs 2 WCU per started KB of the item."""
    return 2 * max(1, math.ceil(size / KB))


def report(sizes: Any) -> None:
    line, day, order = (transactional_wcu(s) for s in (sizes.line, sizes.day, sizes.order))
    per_item = PARTITION_WCU_PER_S / line
    print("NOT a measurement: arithmetic from published DynamoDB limits")
    print(
        f"  a partition (so any one item) takes about {PARTITION_WCU_PER_S:,} WCU/s;"
        " a transactional write costs 2 WCU per KB of item"
    )
    print("  one claim = TransactWriteItems of 3 writes (sizes estimated from the items on moto):")
    print(f"    line item   pk LINE#<line>, sk LINE       ~{sizes.line:>5} B -> {line} WCU")
    print(
        f"    day item    pk LINE#<line>#DAY#<date>     ~{sizes.day:>5} B -> {day} WCU"
        "  (its own partition key: off the line item's partition)"
    )
    print(
        f"    order item  pk T#<tenant>#O#<order>       ~{sizes.order:>5} B -> {order} WCU"
        "  (one per order: spread over the Orders table's partitions)"
    )
    print("  ceiling for one line:")
    print(
        f"    the line item alone:        {PARTITION_WCU_PER_S:,} / {line} = {per_item:,.0f}"
        " claims/s (a per-item limit: no split can lift it)"
    )
    print(
        f"    the day item alone:         {PARTITION_WCU_PER_S:,} / {day} ="
        f" {PARTITION_WCU_PER_S / day:,.0f} claims/s on its own partition"
    )
    print(f"    so ~{per_item:,.0f} claims/s per line")
    print("    releases, draws and restores write the same line item and spend the same budget;")
    print(
        "    transactions that meet on one item are cancelled (TransactionConflict), not"
        " queued, so the rate under contention is lower still"
    )
    print("  future work, not built: shard a line's capacity over K shard items")
    print(
        "    LINE#<line>#S<k> (each with limit/K and daily cap/K, its own day item); a claim"
        " picks a shard by a hash of the order id"
    )
    print(
        "    and falls back to another shard when that one is full; K shards on K partitions"
        " raise the ceiling K-fold:"
    )
    print("    " + ", ".join(f"K={k}: {k * per_item:,.0f}" for k in SHARDS) + " claims/s")
    print(
        "    costs: capacity fragments (an order may fit the line but no single shard), shards"
        " need rebalancing, a line's"
    )
    print(
        "    counters become the sum of K items, and the table's own throughput quota still applies"
    )
