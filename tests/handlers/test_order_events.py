"""POST /v1/orders/{orderId}/events on moto: each event moves the order and its
line's capacity in one transaction, exactly once per eventId. After every step the
line's counters are checked against the orders (the invariant of docs/design.md)."""

import hashlib
import json

import pytest
from fundrouter.domain.lifecycle import OrderEvent

from tests.conftest import event_names, load_event
from tests.support.world import World


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
        (["order_event_cancelled"], "order_event_disbursed_partly", 409, "transition_not_allowed"),
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
