"""POST /v1/orders/{orderId}/events on moto: each event moves the order and its
line's capacity in one transaction, exactly once per eventId. After every step the
line's counters are checked against the orders (the invariant of docs/design.md)."""

import hashlib
import json
from collections.abc import Iterator

import pytest
from fundrouter.domain.lifecycle import OrderEvent
from fundrouter.http.orders import metrics

from tests.support.events import event_names, load_event
from tests.support.handlers import handler_module
from tests.support.metrics import metric_values
from tests.support.world import World

reconciler = handler_module("reconciler", "reconciler_handler")
DAY = "2026-11-24"  # the claim's local day on the line (Asia/Shanghai)


@pytest.fixture
def world(orders_table: str) -> World:
    return World(orders_table)


def test_every_order_event_sample_is_covered() -> None:
    assert {n for n in event_names("api") if n.startswith("order_event")} == {
        "order_event_approved",
        "order_event_declined",
        "order_event_cancelled",
        "order_event_disbursed_partly",
        "order_event_repaid_part",
        "order_event_repaid_rest",
        "order_event_disbursed_without_amount",
        "order_event_approved_with_amount",
        "order_event_unknown_type",
    }


def test_an_order_goes_from_match_to_repaid_moving_capacity_exactly(world: World) -> None:
    matched = world.matched_order()
    assert (matched["status"], matched["lineId"]) == ("MATCHED", "bank-a-consumer")
    assert world.line() == (1_250_000, 0, 8_750_000)

    status, approved = world.call("order_event_approved")
    assert (status, approved["status"]) == (200, "APPROVED")
    assert world.line() == (1_250_000, 0, 8_750_000)

    _, disbursed = world.call("order_event_disbursed_partly")  # 1,000,000 of 1,250,000
    assert (disbursed["status"], disbursed["outstanding"], disbursed["reserved"]) == (
        "DISBURSED",
        1_000_000,
        0,
    )
    assert world.line() == (0, 1_000_000, 9_000_000)

    _, part = world.call("order_event_repaid_part")  # 400,000
    assert (part["status"], part["outstanding"]) == ("DISBURSED", 600_000)
    assert world.line() == (0, 600_000, 9_400_000)

    _, repaid = world.call("order_event_repaid_rest")  # 600,000
    assert (repaid["status"], repaid["outstanding"]) == ("REPAID", 0)
    assert world.line() == (0, 0, 10_000_000)
    assert [h["status"] for h in repaid["history"]] == [
        "RECEIVED", "MATCHED", "APPROVED", "DISBURSED", "DISBURSED", "REPAID",
    ]  # fmt: skip
    world.assert_invariant()


def test_a_repeated_event_returns_the_same_result_and_changes_nothing(world: World) -> None:
    world.matched_order()
    first = world.call("order_event_disbursed_partly")
    before = world.everything()

    again = world.call("order_event_disbursed_partly")

    assert again == first
    assert world.everything() == before


def test_the_same_event_id_with_other_content_is_a_conflict(world: World) -> None:
    world.matched_order()
    world.call("order_event_approved")
    before = world.everything()
    event = load_event("api/order_event_approved.json")
    event["body"] = json.dumps({"eventId": "evt-approve-1", "type": "CANCELLED"})

    status, body = world.call(event)

    assert (status, body["error"]["code"]) == (409, "event_conflict")
    assert world.everything() == before


def test_cancelling_a_matched_order_gives_its_reservation_back(world: World) -> None:
    world.matched_order()

    status, cancelled = world.call("order_event_cancelled")

    assert (status, cancelled["status"], cancelled["reserved"]) == (200, "CANCELLED", 0)
    assert world.line() == (0, 0, 10_000_000)
    record = world.lines.get("bank-a-consumer", ["2026-11-24"])
    assert record is not None
    assert record.line.counters.used_on("2026-11-24") == 0
    world.assert_invariant()


def test_a_declined_order_is_rerouted_to_the_next_line_never_the_one_that_declined(
    world: World,
) -> None:
    world.matched_order()

    status, declined = world.call("order_event_declined")
    world.match()
    _, rerouted = world.call("get_order")

    assert (status, declined["status"], declined["declinedLineIds"]) == (
        200,
        "RECEIVED",
        ["bank-a-consumer"],
    )
    assert world.line("bank-a-consumer") == (0, 0, 10_000_000)
    assert (rerouted["status"], rerouted["lineId"]) == ("MATCHED", "trust-b")
    assert world.line("trust-b")[0] == 1_250_000
    world.assert_invariant()


@pytest.mark.parametrize(
    ("setup", "event", "status", "code"),
    [
        ([], "order_event_approved", 409, "transition_not_allowed"),
        (["order_event_cancelled"], "order_event_repaid_part", 409, "transition_not_allowed"),
        (["order_event_disbursed_partly"], "order_event_approved", 409, "transition_not_allowed"),
        (
            ["order_event_disbursed_partly", "order_event_repaid_part"],
            "order_event_repaid_rest",
            200,
            None,
        ),
    ],
)
def test_events_the_state_does_not_allow_are_409_with_the_current_status(
    world: World, setup: list[str], event: str, status: int, code: str | None
) -> None:
    assert world.call("submit_order")[0] == 202
    if setup:
        world.match()
    for name in setup:
        assert world.call(name)[0] == 200
    before = world.everything()

    answer, body = world.call(event)

    assert answer == status
    if code is not None:
        assert body["error"]["code"] == code
        assert "is not allowed for an order that is" in body["error"]["message"]
        assert world.everything() == before


def test_amounts_above_what_is_held_are_422(world: World) -> None:
    world.matched_order()
    too_much = load_event("api/order_event_disbursed_partly.json")
    too_much["body"] = json.dumps({"eventId": "evt-big", "type": "DISBURSED", "amount": 1_250_001})
    before = world.everything()

    status, body = world.call(too_much)

    assert status == 422
    assert body["error"]["fields"] == [
        {"field": "amount", "reason": "above the reservation 1250000"}
    ]
    assert world.everything() == before


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("order_event_disbursed_without_amount", "amount"),
        ("order_event_approved_with_amount", "amount"),
        ("order_event_unknown_type", "type"),
    ],
)
def test_malformed_events_are_422_naming_the_field(world: World, name: str, field: str) -> None:
    world.matched_order()
    before = world.everything()

    status, body = world.call(name)

    assert status == 422
    assert field in {f["field"] for f in body["error"]["fields"]}
    assert world.everything() == before


def test_an_event_for_an_unknown_order_is_404(world: World) -> None:
    status, body = world.call("order_event_approved")

    assert (status, body["error"]["code"]) == (404, "order_not_found")


def test_a_line_shows_how_many_orders_hold_it_by_status(world: World) -> None:
    world.matched_order()
    _, matched = world.call("get_line")

    world.call("order_event_disbursed_partly")
    _, disbursed = world.call("get_line")

    assert matched["orders"] == {"MATCHED": 1, "APPROVED": 0, "DISBURSED": 0}
    assert disbursed["orders"] == {"MATCHED": 0, "APPROVED": 0, "DISBURSED": 1}


def event_body(name: str, **changes: object) -> dict[str, object]:
    event = load_event(f"api/{name}.json")
    event["body"] = json.dumps(json.loads(event["body"]) | changes)
    return event


def test_a_late_decline_from_the_line_the_order_left_is_409_and_changes_nothing(
    world: World,
) -> None:
    world.matched_order()
    assert world.call("order_event_declined")[0] == 200  # bank-a-consumer declines
    world.match()
    _, rerouted = world.call("get_order")
    assert (rerouted["status"], rerouted["lineId"]) == ("MATCHED", "trust-b")
    before = world.everything()

    # bank-a-consumer's duplicate answer, sent again under a new eventId.
    status, body = world.call(event_body("order_event_declined", eventId="evt-decline-late"))

    assert (status, body["error"]["code"]) == (409, "line_mismatch")
    assert body["error"]["fields"] == [{"field": "lineId", "reason": "order's line is trust-b"}]
    assert world.everything() == before
    assert world.call("get_order")[1] == rerouted
    world.assert_invariant()


def test_an_event_expecting_another_version_is_409_and_changes_nothing(world: World) -> None:
    matched = world.matched_order()
    before = world.everything()

    stale = world.call(event_body("order_event_approved", expectedVersion=matched["version"] - 1))

    assert (stale[0], stale[1]["error"]["code"]) == (409, "version_mismatch")
    assert stale[1]["error"]["fields"][0]["field"] == "expectedVersion"
    assert world.everything() == before
    current = world.call(
        event_body("order_event_approved", eventId="evt-2", expectedVersion=matched["version"])
    )
    assert (current[0], current[1]["status"]) == (200, "APPROVED")


def test_an_event_without_guards_hashes_as_events_stored_before_they_existed() -> None:
    """A replay of an event recorded before lineId and expectedVersion existed must
    match its stored hash, or it would be refused as a conflict."""
    stored_form = {"eventId": "e-1", "type": "APPROVED", "amount": None, "reason": None}
    stored_hash = hashlib.sha256(
        json.dumps(stored_form, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()

    assert OrderEvent.model_validate({"eventId": "e-1", "type": "APPROVED"}).content_hash() == (
        stored_hash
    )
    guarded = OrderEvent.model_validate({"eventId": "e-1", "type": "APPROVED", "lineId": "l"})
    assert guarded.content_hash() != stored_hash


# ---------------------------------------------------------------- disbursements, late and partial


@pytest.fixture
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def used_today(world: World) -> int:
    record = world.lines.get("bank-a-consumer", [DAY])
    assert record is not None
    return record.line.counters.used_on(DAY)


def hold_given_back(world: World, how: str) -> None:
    """The order's hold expired (the reconciler ran after its time) or was cancelled."""
    world.matched_order()
    if how == "expired":
        world.clock.advance(901)
        assert reconciler.handle(world.reconciler)["expired"] == ["shop-20261124-0001"]
    else:
        assert world.call("order_event_cancelled")[0] == 200
    assert (world.line(), used_today(world)) == ((0, 0, 10_000_000), 0)


def test_a_partial_disbursement_gives_the_rest_back_to_the_days_usage(world: World) -> None:
    world.matched_order()
    assert used_today(world) == 1_250_000

    world.call("order_event_disbursed_partly")  # 1,000,000 of 1,250,000

    assert used_today(world) == 1_000_000
    assert world.line() == (0, 1_000_000, 9_000_000)


@pytest.mark.parametrize("how", ["expired", "cancelled"])
def test_a_late_disbursement_within_the_grace_draws_on_the_line_again(
    world: World, how: str
) -> None:
    hold_given_back(world, how)
    world.clock.advance(3000)  # within the default hour

    status, body = world.call("order_event_disbursed_partly")

    assert (status, body["status"], body["outstanding"], body["overLimit"]) == (
        200,
        "DISBURSED",
        1_000_000,
        False,
    )
    assert [h["status"] for h in body["history"]][-2:] == [how.upper(), "DISBURSED"]
    assert world.line() == (0, 1_000_000, 9_000_000)
    assert used_today(world) == 1_000_000
    world.assert_invariant()


def test_a_late_disbursement_after_the_grace_is_refused_and_writes_nothing(world: World) -> None:
    hold_given_back(world, "expired")
    world.clock.advance(3601)
    before = world.everything()

    status, body = world.call("order_event_disbursed_partly")

    assert (status, body["error"]["code"]) == (409, "transition_not_allowed")
    assert world.everything() == before


def test_a_late_disbursement_above_the_order_amount_is_422(world: World) -> None:
    hold_given_back(world, "cancelled")
    event = load_event("api/order_event_disbursed_partly.json")
    event["body"] = json.dumps({"eventId": "evt-big", "type": "DISBURSED", "amount": 1_250_001})

    status, body = world.call(event)

    assert (status, body["error"]["code"]) == (422, "amount_exceeds_held")


def test_a_late_disbursement_with_no_room_is_still_drawn_flagged_and_counted(
    world: World, fresh_metrics: None
) -> None:
    hold_given_back(world, "expired")
    record = world.lines.get("bank-a-consumer")
    assert record is not None
    lowered = record.line.config.model_copy(update={"limit": 999_999})
    world.lines.put_config("bank-a-consumer", lowered, world.clock())  # no room for 1,000,000

    status, body = world.call("order_event_disbursed_partly")
    again = world.call("order_event_disbursed_partly")

    assert (status, body["status"], body["overLimit"]) == (200, "DISBURSED", True)
    assert again == (status, body)
    assert world.line() == (0, 1_000_000, -1)  # held above the limit, by this order
    assert used_today(world) == 1_000_000
    world.assert_invariant()  # drawn is exactly the outstanding of its orders
    counted = metric_values([metrics.serialize_metric_set()])
    assert counted[("OverLimitDisbursements", "")] == 1
    summary = reconciler.handle(world.reconciler)
    assert summary["drift"] == []
