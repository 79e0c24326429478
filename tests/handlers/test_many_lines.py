"""An order against 1,000 lines, on moto through the API handler and the matcher: it
is matched, and its item and the match's writes weigh what they weigh against 10
lines, because the stored decision names at most 10 other lines and counts the rest."""

import json
import math
from typing import Any

import pytest
from fundrouter.persistence.codec import item_size
from fundrouter.persistence.lines import LINE_SK, line_pk
from fundrouter.persistence.orders import ORDER_SK, order_pk

from tests.support.events import load_event
from tests.support.factories import line_config
from tests.support.moto_speed import speed_up_moto
from tests.support.world import LINES_TABLE, TENANT, World

KB = 1024


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    speed_up_moto(monkeypatch)
    return World(orders_table)


def add_refusing_lines(world: World, first: int, last: int) -> None:
    """Lines ranked before the world's two that cannot take a 12-month order: the
    last written by put_config, the others copies of its item under their own ids
    (put_config on moto takes 40 ms a line; what is measured here is the match)."""
    line = line_config(
        funderId="f",
        name="refuses",
        limit=10**9,
        maxAmount=10**8,
        terms=[36],
        aprBps=900,
        priority=0,
        weight=1,
    )
    world.lines.put_config(f"many-{last - 1:04d}", line, world.clock())
    key = {"pk": {"S": line_pk(f"many-{last - 1:04d}")}, "sk": {"S": LINE_SK}}
    stored = world.client.get_item(TableName=LINES_TABLE, Key=key)["Item"]
    copies = [
        stored | {"pk": {"S": line_pk(f"many-{n:04d}")}, "lineId": {"S": f"many-{n:04d}"}}
        for n in range(first, last - 1)
    ]
    for start in range(0, len(copies), 25):
        requests = [{"PutRequest": {"Item": item}} for item in copies[start : start + 25]]
        world.client.batch_write_item(RequestItems={LINES_TABLE: requests})


def submit_and_match(world: World, order_id: str) -> dict[str, Any]:
    event = load_event("api/submit_order.json")
    body = json.loads(event["body"]) | {"orderId": order_id}
    assert world.call(event | {"body": json.dumps(body)})[0] == 202
    order = world.orders.get(TENANT, order_id)
    assert order is not None
    world.matcher.match(order)
    key = {"pk": {"S": order_pk(TENANT, order_id)}, "sk": {"S": ORDER_SK}}
    return dict(world.client.get_item(TableName=world.orders_table, Key=key)["Item"])


def written_units(world: World, items: list[dict[str, Any]]) -> int:
    """2 write units per started KB of each item in the transaction, as stored now
    (moto returns no consumed capacity; a ConditionCheck is billed like a write)."""
    units = 0
    for action in items:
        operation = next(iter(action.values()))
        key = operation.get("Key") or {name: operation["Item"][name] for name in ("pk", "sk")}
        stored = world.client.get_item(TableName=operation["TableName"], Key=key)["Item"]
        units += 2 * max(1, math.ceil(item_size(stored) / KB))
    return units


def test_an_order_against_1000_lines_costs_what_it_costs_against_10(world: World) -> None:
    sent = world.transactions()
    add_refusing_lines(world, 0, 8)  # 10 lines with the world's two
    small = submit_and_match(world, "many-order-0010")
    small_units = written_units(world, sent[-1])
    add_refusing_lines(world, 8, 998)  # 1,000 lines
    large = submit_and_match(world, "many-order-1000")
    large_units = written_units(world, sent[-1])

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
