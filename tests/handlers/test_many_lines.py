"""An order against 1,000 lines, on moto through the API handler and the matcher: it
is matched, and its item and the match's writes weigh what they weigh against 10
lines, because the stored decision names at most 10 other lines and counts the rest."""

import pytest
from fundrouter.persistence.codec import item_size

from tests.support.moto_speed import speed_up_moto
from tests.support.world import (
    KB,
    World,
    add_refusing_lines,
    stored_sizes,
    submit_and_match,
    transaction_units,
)


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    speed_up_moto(monkeypatch)
    return World(orders_table)


def test_an_order_against_1000_lines_costs_what_it_costs_against_10(world: World) -> None:
    sent = world.transactions()
    add_refusing_lines(world, 0, 8)  # 10 lines with the world's two
    small = submit_and_match(world, "many-order-0010")
    small_units = transaction_units(stored_sizes(world, sent[-1]))
    add_refusing_lines(world, 8, 998)  # 1,000 lines
    large = submit_and_match(world, "many-order-1000")
    large_units = transaction_units(stored_sizes(world, sent[-1]))

    for item in (small, large):
        assert item["status"]["S"] == "MATCHED"
        assert item["lineId"]["S"] == "bank-a-consumer"
    decision = large["decision"]["M"]
    assert len(decision["candidates"]["L"]) == 11  # the claimed line and 10 others
    # 999 others: trust-b (eligible, so named first) and 998 that refuse the term.
    assert {code: int(n["N"]) for code, n in decision["more"]["M"].items()} == {
        "TERM_NOT_OFFERED": 999 - 10
    }
    assert item_size(large) < 4 * KB
    assert item_size(large) <= 1.1 * item_size(small)
    assert large_units == small_units
