"""Money, bars and tables, rendered to text with rich's recording console."""

from typing import Any

import pytest
from fundrouter_cli.render import (
    bar_cells,
    lines_table,
    money,
    order_view,
    outcome_table,
    utilization_bar,
)
from rich.console import Console, RenderableType

from tests.cli.fake_api import line, order


def text(renderable: RenderableType, width: int = 140) -> str:
    console = Console(record=True, width=width)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(
    ("amount", "currency", "exact", "compact"),
    [
        (1_250_000, "CNY", "12,500.00", "12.5K"),
        (500_000_000, "CNY", "5,000,000.00", "5M"),
        (498_750_000, "CNY", "4,987,500.00", "4.99M"),
        (99_996_000, "CNY", "999,960.00", "1M"),
        (50, "CNY", "0.50", "0.5"),
        (0, "USD", "0.00", "0"),
        (1500, "JPY", "1,500", "1.5K"),
        (1_234_567, "KWD", "1,234.567", "1.23K"),
        (-2_500_000, "CNY", "-25,000.00", "-25K"),
    ],
)
def test_money_in_major_units(amount: int, currency: str, exact: str, compact: str) -> None:
    assert money(amount, currency) == exact
    assert money(amount, currency, compact=True) == compact


def test_bar_cells_round_down_but_any_use_shows() -> None:
    assert bar_cells(1000, 0, 0, 20) == (0, 0)
    assert bar_cells(1000, 250, 250, 20) == (5, 5)
    assert bar_cells(1000, 999, 0, 20) == (0, 19)  # nearly full is not full
    assert bar_cells(1000, 1, 0, 20) == (0, 1)
    assert bar_cells(1000, 0, 1, 20) == (1, 0)
    assert bar_cells(1000, 900, 900, 20) == (18, 2)  # over the limit: capped at the width
    assert bar_cells(0, 5, 5, 20) == (0, 0)


def test_utilization_bar_shows_drawn_reserved_free_and_share() -> None:
    bar = utilization_bar(1000, 250, 250, width=8)

    assert bar.plain == "██▓▓░░░░  50.0%"


def test_the_lines_table_shows_every_figure_and_a_bar() -> None:
    lines = [
        line("bank-a-consumer"),
        line(
            "trust-b",
            funderId="trust-b",
            limit=100_000_000,
            reserved=0,
            drawn=0,
            available=100_000_000,
            usedToday=0,
            dailyLimit=None,
            status="PAUSED",
        ),
    ]

    rendered = text(lines_table(lines))

    assert "Lending lines (2)" in rendered
    row = next(r for r in rendered.splitlines() if r.startswith(" bank-a-consumer"))
    for figure in ("5M", "1.25M", "1M", "2.75M", "250K/500K", "45.0%"):
        assert figure in row
    assert "███▓▓▓▓░░░░░░░░░" in row  # 16 cells: 3 drawn, 4 reserved, 9 free
    paused = next(r for r in rendered.splitlines() if r.startswith(" trust-b"))
    assert "PAUSED" in paused
    assert "0.0%" in paused
    total = next(r for r in rendered.splitlines() if r.startswith(" total"))
    assert "6M" in total
    assert "amounts in CNY" in rendered


def test_exact_amounts_on_request() -> None:
    rendered = text(lines_table([line("bank-a-consumer")], exact=True))

    assert "5,000,000.00" in rendered
    assert "1,250,000.00" in rendered


def test_a_line_over_its_limit_shows_negative_available() -> None:
    over = line("x", limit=100, reserved=80, drawn=40, available=-20, dailyLimit=None)

    rendered = text(lines_table([over]))

    assert "-0.2" in rendered
    assert "120.0%" in rendered


def test_mixed_currencies_get_a_column_and_a_total_each() -> None:
    lines = [line("cny"), line("usd", currency="USD")]

    rendered = text(lines_table(lines))

    assert " Cur " in rendered
    assert sum(1 for r in rendered.splitlines() if r.startswith(" total")) == 2


def test_no_lines_yet() -> None:
    assert "no lines yet" in text(lines_table([]))


def test_an_order_shows_status_line_every_reason_and_history() -> None:
    rendered = text(order_view(order("shop-1")))

    assert "Order shop-1  MATCHED" in rendered
    assert "12,500.00 CNY" in rendered
    assert "bank-a-consumer (funder bank-a)" in rendered
    assert "Decision (PRIORITY)" in rendered
    assert "INELIGIBLE AMOUNT_ABOVE_MAX" in rendered
    assert "amount above maxAmount 1000000" in rendered
    assert "CLAIMED" in rendered
    history = rendered[rendered.index("History") :]
    assert history.index("RECEIVED") < history.index("MATCHED")


def test_outcomes_count_orders_and_amounts_by_status() -> None:
    orders: list[dict[str, Any]] = [
        order("a"),
        order("b", amount=750_000),
        order("c", status="UNMATCHED"),
        order("d", status="REPAID"),
    ]

    rendered = text(outcome_table(orders))

    matched = next(r for r in rendered.splitlines() if r.strip().startswith("MATCHED"))
    assert matched.split() == ["MATCHED", "│", "2", "│", "50%", "│", "20K", "CNY"]
    assert rendered.index("MATCHED") < rendered.index("REPAID") < rendered.index("UNMATCHED")
    assert next(r for r in rendered.splitlines() if "total" in r).split()[:3] == ["total", "│", "4"]
