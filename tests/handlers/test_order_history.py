"""An order's history beyond the order item, on moto: the order item keeps the newest
entries, older ones are items of their own written in the same transaction, and
GET /v1/orders/{orderId}/history pages through all of them. Event records keep the
event and the version it made, never a copy of the order."""

import json
import os
from typing import Any

import pytest
from fundrouter.domain.orders import MAX_SPILL, RECENT_HISTORY
from fundrouter.persistence.codec import item_size, to_item
from fundrouter.persistence.orders import order_pk

from tests.support.events import event_names, load_event
from tests.support.moto_speed import speed_up_moto
from tests.support.world import KB, ORDER_ID, TENANT, World, disbursed, repaid, stored_order

# 1,000 here (about 50 s on moto); FUNDROUTER_REPAYMENTS=10000 runs the 10,000
# (several minutes), as bench/capacity.py does on every `make bench`.
REPAYMENTS = int(os.environ.get("FUNDROUTER_REPAYMENTS", "1000"))


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    speed_up_moto(monkeypatch)  # moto copies whole tables per transaction otherwise
    return World(orders_table)


def test_every_history_sample_is_covered() -> None:
    assert {n for n in event_names("api") if n.startswith("order_history")} == {
        "order_history",
        "order_history_forged_cursor",
    }


def history_page(cursor: str | None = None, limit: int = 100, **query: str) -> dict[str, Any]:
    event = load_event("api/order_history.json")
    params = {"limit": str(limit)} | ({} if cursor is None else {"cursor": cursor}) | query
    return event | {
        "queryStringParameters": params,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in params.items()),
    }


def whole_history(world: World, limit: int = 100) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, page = world.call(history_page(cursor, limit))
        assert status == 200, page
        entries += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return entries


def test_every_partial_repayment_succeeds_and_the_order_item_stays_small(
    world: World,
) -> None:
    """Before the bound, the order item grew by one entry per event and every event
    failed once it passed 400 KB (about 4,000 repayments)."""
    disbursed(world)
    sizes = []
    for number in range(REPAYMENTS):
        status, order = world.call(repaid(number))
        assert status == 200, (number, order)
        if number % 1000 == 0:
            sizes.append(item_size(stored_order(world)))
    sizes.append(item_size(stored_order(world)))

    assert max(sizes) < 4 * KB, sizes
    assert (order["outstanding"], order["historyTotal"]) == (1_000_000 - REPAYMENTS, REPAYMENTS + 3)
    assert len(order["history"]) == RECENT_HISTORY
    assert world.line() == (0, 1_000_000 - REPAYMENTS, 9_000_000 + REPAYMENTS)
    entries = whole_history(world)
    assert [(e["status"], e["event"], e["amount"]) for e in entries] == [
        ("RECEIVED", None, None),
        ("MATCHED", None, None),
        ("DISBURSED", "DISBURSED", 1_000_000),
    ] + [("DISBURSED", "REPAID", 1)] * REPAYMENTS
    assert entries[-RECENT_HISTORY:] == order["history"]
    world.assert_invariant()


def test_paging_while_events_arrive_returns_every_entry_once_in_order(world: World) -> None:
    disbursed(world)
    for number in range(RECENT_HISTORY + 5):
        assert world.call(repaid(number, amount=number + 1))[0] == 200
    status, first = world.call(history_page(limit=4))  # entries 0-3, all stored apart

    for number in range(RECENT_HISTORY + 5, RECENT_HISTORY + 30):  # more move apart
        assert world.call(repaid(number, amount=number + 1))[0] == 200
    rest: list[dict[str, Any]] = []
    cursor = first["nextCursor"]
    while cursor is not None:
        page = world.call(history_page(cursor, limit=7))[1]
        rest += page["items"]
        cursor = page["nextCursor"]

    amounts = [entry["amount"] for entry in first["items"] + rest]
    assert status == 200
    assert amounts == [None, None, 1_000_000, *range(1, RECENT_HISTORY + 31)]


def test_the_order_item_sheds_entries_in_the_transaction_that_appends(world: World) -> None:
    disbursed(world)  # 3 entries
    for number in range(RECENT_HISTORY - 3):
        world.call(repaid(number))
    stored_apart = [i for i in world.everything() if '"HIST#' in i]
    assert stored_apart == []  # exactly full: nothing moved yet

    order = world.call(repaid(RECENT_HISTORY))[1]

    stored_apart = [json.loads(i) for i in world.everything() if '"HIST#' in i]
    assert [i["sk"]["S"] for i in stored_apart] == ["HIST#0000000000"]
    assert stored_apart[0]["status"]["S"] == "RECEIVED"
    assert (len(order["history"]), order["historyTotal"]) == (RECENT_HISTORY, RECENT_HISTORY + 1)
    assert order["history"][0]["status"] == "MATCHED"


def test_an_order_stored_with_its_whole_history_sheds_it_over_its_next_writes(
    world: World,
) -> None:
    """Items written before the bound carry every entry and no count."""
    disbursed(world)
    key = {"pk": {"S": order_pk(TENANT, ORDER_ID)}, "sk": {"S": "ORDER"}}
    item = world.client.get_item(TableName=world.orders_table, Key=key)["Item"]
    entry = {
        "status": "DISBURSED",
        "at": "2026-11-24T10:00:09.000Z",
        "event": "REPAID",
        "amount": 1,
    }
    legacy = item["history"]["L"] + to_item({"e": [entry] * 117})["e"]["L"]
    del item["historyTotal"], item["previousStatus"]
    item["history"] = {"L": legacy}
    world.client.put_item(TableName=world.orders_table, Item=item)

    order = world.call(repaid(1))[1]

    assert order["historyTotal"] == 121
    assert len(order["history"]) == 121 - MAX_SPILL
    assert len(whole_history(world, limit=9)) == 121
    for number in range(2, 5):
        order = world.call(repaid(number))[1]
    assert len(order["history"]) == RECENT_HISTORY
    entries = whole_history(world)
    assert len(entries) == 124
    assert entries[3:120] == [entry | {"lineId": None}] * 117


def test_a_forged_or_foreign_cursor_is_422_and_other_tenants_see_404(world: World) -> None:
    disbursed(world)
    for number in range(RECENT_HISTORY + 2):
        world.call(repaid(number))
    cursor = world.call(history_page(limit=5))[1]["nextCursor"]
    assert cursor is not None

    status, body = world.call("order_history_forged_cursor")  # another tenant's key
    assert (status, body["error"]["code"]) == (422, "invalid_cursor")
    for forged in ("not-base64!", cursor[:-2], cursor + "x"):
        status, body = world.call(history_page(forged))
        assert (status, body["error"]["code"]) == (422, "invalid_cursor"), forged

    other = history_page()
    claims = other["requestContext"]["authorizer"]["jwt"]["claims"]
    other["requestContext"]["authorizer"]["jwt"]["claims"] = claims | {"client_id": "othertenant"}
    assert world.call(other)[0] == 404
    assert world.call(other | {"queryStringParameters": {"tenantId": TENANT}})[0] == 403
    admin = load_event("api/get_order_by_admin.json")["requestContext"]
    by_admin = history_page(tenantId=TENANT) | {"requestContext": admin}
    status, page = world.call(by_admin)
    assert (status, len(page["items"])) == (200, 25)


def test_an_event_record_keeps_the_version_not_a_copy_of_the_order(world: World) -> None:
    """Each record held the whole order: storage grew with the square of the events."""
    disbursed(world)
    world.call(repaid(1))

    records = [json.loads(i) for i in world.everything() if '"EVENT#' in i]

    assert {r["sk"]["S"]: r["version"]["N"] for r in records} == {
        "EVENT#evt-disburse-1": "3",
        "EVENT#repay-1": "4",
    }
    assert all("result" not in r and item_size(r) < 300 for r in records)


def test_a_repeated_event_answers_the_order_as_it_stands(world: World) -> None:
    disbursed(world)
    first = world.call(repaid(1))[1]
    latest = world.call(repaid(2))[1]
    before = world.everything()

    status, again = world.call(repaid(1))

    assert (status, first["version"], again) == (200, 4, latest)
    assert world.everything() == before
