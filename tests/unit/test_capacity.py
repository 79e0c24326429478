"""The capacity model (tests/support/capacity.py, docs/capacity.md) runs on the template as
written and its figures meet the goals: a template change that puts every order, or
every order of a tenant, back on one partition (an ALL projection, a shard dropped)
fails here."""

import math

from tests.support import capacity


def test_the_template_takes_the_goal_rates_before_any_partition_is_full() -> None:
    partitions, found = capacity.model()

    assert found.system >= capacity.GOALS["system"] == 5_000
    assert found.tenant >= capacity.GOALS["tenant"] == 1_000
    by_label = {p.index.label: p for p in partitions}
    # Every index the template declares is in the model, and the one per-line hot spot
    # left is the line's own items (and byLine), as docs/capacity.md says.
    assert set(by_label) >= {
        "OrdersTable",
        "OrdersTable.byTenant",
        "OrdersTable.byTenantStatus",
        "OrdersTable.byDue",
        "OrdersTable.byLine",
        "LinesTable",
        "LinesTable.lines",
    }
    assert {p.scope for p in partitions if p.ceiling < capacity.GOALS["tenant"]} == {"line"}
    assert 0 < found.line < math.inf
