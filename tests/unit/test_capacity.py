"""The capacity model (bench/capacity.py, docs/capacity.md) runs on the template as
written and its figures meet the goals: a template change that puts every order, or
every order of a tenant, back on one partition (an ALL projection, a shard dropped)
fails here."""

import math
from types import ModuleType

import pytest

from tests.support import template
from tests.support.template import ROOT


@pytest.fixture
def capacity(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # its siblings, as bench/run.py has them
    import capacity  # noqa: PLC0415

    return capacity


def test_the_template_takes_the_goal_rates_before_any_partition_is_full(
    capacity: ModuleType,
) -> None:
    partitions, found = capacity.model(template)

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
