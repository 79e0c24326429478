"""Validation of a lending line's configuration (the body of PUT /v1/lines/{lineId}):
every rule refuses with a pydantic error whose loc names the camelCase field."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fundrouter.domain.lines import (
    DEFAULT_TIMEZONE,
    MAX_LIMIT,
    MAX_LIST_ENTRIES,
    LineConfig,
    LineStatus,
)
from fundrouter.domain.orders import MAX_AMOUNT
from pydantic import ValidationError

from tests.support.factories import API_EXAMPLE, line_body


def refused_fields(body: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as refused:
        LineConfig.model_validate(body)
    return [error["loc"] for error in refused.value.errors()]


def test_the_api_example_is_a_valid_line() -> None:
    config = LineConfig.model_validate(line_body(API_EXAMPLE))

    assert config.funder_id == "bank-a"
    assert config.limit == 500_000_000
    assert config.daily_limit == 50_000_000
    assert config.terms == [3, 6, 12, 24]
    assert config.credit_grades == ["A", "B"]
    assert config.status is LineStatus.ACTIVE
    assert config.timezone == DEFAULT_TIMEZONE == "Asia/Shanghai"


def test_optional_fields_default_to_no_cap_any_value_and_always_active() -> None:
    body = line_body(API_EXAMPLE)
    for optional in ("dailyLimit", "terms", "products", "regions", "creditGrades"):
        del body[optional]
    for optional in ("activeFrom", "activeUntil", "status"):
        del body[optional]

    config = LineConfig.model_validate(body)

    assert config.daily_limit is None
    assert config.terms == config.products == config.regions == config.credit_grades == []
    assert config.active_from is None
    assert config.active_until is None
    assert config.status is LineStatus.ACTIVE


def test_a_line_survives_a_json_round_trip_with_camel_case_names() -> None:
    config = LineConfig.model_validate(
        line_body(
            API_EXAMPLE,
            activeFrom="2026-12-01T00:00:00+08:00",
            activeUntil="2027-01-01T00:00:00Z",
            timezone="UTC",
        )
    )

    dumped = config.model_dump(mode="json", by_alias=True)

    assert dumped["activeFrom"] == "2026-11-30T16:00:00.000Z"
    assert dumped["creditGrades"] == ["A", "B"]
    assert LineConfig.model_validate_json(json.dumps(dumped)) == config


def test_the_largest_limit_and_order_sizes_are_accepted() -> None:
    config = LineConfig.model_validate(
        line_body(
            API_EXAMPLE, limit=MAX_LIMIT, dailyLimit=MAX_LIMIT, minAmount=1, maxAmount=MAX_AMOUNT
        )
    )

    assert (config.limit, config.max_amount) == (MAX_LIMIT, MAX_AMOUNT)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("funderId", ""),
        ("funderId", "bank a"),
        ("name", ""),
        ("name", "x" * 129),
        ("currency", "cny"),
        ("currency", "XYZ"),
        ("currency", "CNYX"),
        ("limit", 0),
        ("limit", -1),
        ("limit", MAX_LIMIT + 1),
        ("limit", 1.0),
        ("limit", "500000000"),
        ("limit", True),
        ("dailyLimit", 0),
        ("dailyLimit", MAX_LIMIT + 1),
        ("dailyLimit", 100.5),
        ("minAmount", 0),
        ("minAmount", MAX_AMOUNT + 1),
        ("maxAmount", 0),
        ("maxAmount", MAX_AMOUNT + 1),
        ("maxAmount", 9_999),
        ("terms", [0]),
        ("terms", [481]),
        ("terms", ["12"]),
        ("terms", [3, 6, 3]),
        ("terms", list(range(1, MAX_LIST_ENTRIES + 2))),
        ("terms", 12),
        ("products", [""]),
        ("products", ["car loan"]),
        ("products", ["installment", "installment"]),
        ("products", [f"p{index}" for index in range(MAX_LIST_ENTRIES + 1)]),
        ("regions", ["G D"]),
        ("regions", ["GD", "GD"]),
        ("regions", ["x" * 17]),
        ("creditGrades", ["A", "A"]),
        ("creditGrades", ["AAAAAAAAA"]),
        ("creditGrades", [1]),
        ("aprBps", -1),
        ("aprBps", 100_001),
        ("aprBps", 12.9),
        ("priority", -1),
        ("priority", 1_000_001),
        ("weight", -1),
        ("weight", 101),
        ("holdSeconds", 59),
        ("holdSeconds", 30 * 24 * 3600 + 1),
        ("holdSeconds", 0),
        ("activeFrom", "2026-12-01T00:00:00"),
        ("activeFrom", "tomorrow"),
        ("activeUntil", "2026-12-01T00:00:00"),
        ("status", "DELETED"),
        ("status", "active"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "asia/shanghai"),
        ("timezone", "Asia"),
        ("timezone", "../../etc/passwd"),
        ("timezone", "/etc/localtime"),
        ("timezone", "localtime"),
        ("timezone", ""),
    ],
)
def test_each_field_rule_names_the_field_it_refuses(field: str, value: Any) -> None:
    locs = refused_fields(line_body(API_EXAMPLE, **{field: value}))

    assert locs
    assert {loc[0] for loc in locs} == {field}


def test_max_amount_may_equal_min_amount() -> None:
    config = LineConfig.model_validate(
        line_body(API_EXAMPLE, minAmount=5_000_000, maxAmount=5_000_000)
    )

    assert config.min_amount == config.max_amount == 5_000_000


def test_max_amount_below_min_amount_is_refused_on_max_amount() -> None:
    assert refused_fields(line_body(API_EXAMPLE, minAmount=5_000_000, maxAmount=4_999_999)) == [
        ("maxAmount",)
    ]


def test_max_amount_below_min_amount_says_which_minimum() -> None:
    with pytest.raises(ValidationError, match="must not be below minAmount 10000"):
        LineConfig.model_validate(line_body(API_EXAMPLE, minAmount=10_000, maxAmount=9_999))


def test_an_invalid_min_amount_is_reported_alone_not_as_a_range_error_too() -> None:
    assert refused_fields(line_body(API_EXAMPLE, minAmount=0, maxAmount=5)) == [("minAmount",)]


@pytest.mark.parametrize(
    ("active_from", "active_until"),
    [
        ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("2026-12-01T00:00:00Z", "2026-11-30T23:59:59Z"),
        ("2026-12-01T08:00:00+08:00", "2026-12-01T00:00:00Z"),
    ],
)
def test_active_until_must_come_after_active_from(active_from: str, active_until: str) -> None:
    body = line_body(API_EXAMPLE, activeFrom=active_from, activeUntil=active_until)

    assert refused_fields(body) == [("activeUntil",)]


def test_an_open_ended_validity_window_is_allowed_on_either_side() -> None:
    opens = LineConfig.model_validate(line_body(API_EXAMPLE, activeFrom="2026-12-01T00:00:00Z"))
    closes = LineConfig.model_validate(line_body(API_EXAMPLE, activeUntil="2026-12-01T00:00:00Z"))

    assert opens.active_from == datetime(2026, 12, 1, tzinfo=UTC)
    assert closes.active_until == datetime(2026, 12, 1, tzinfo=UTC)


def test_unknown_fields_are_refused_by_name() -> None:
    assert refused_fields(line_body(API_EXAMPLE, overdraft=True)) == [("overdraft",)]


@pytest.mark.parametrize(
    "required",
    [
        "funderId",
        "name",
        "currency",
        "limit",
        "minAmount",
        "maxAmount",
        "aprBps",
        "priority",
        "weight",
        "holdSeconds",
    ],
)
def test_required_fields_are_named_when_missing(required: str) -> None:
    body = line_body(API_EXAMPLE)
    del body[required]

    assert refused_fields(body) == [(required,)]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "America/New_York", "Etc/GMT-8"])
def test_any_iana_time_zone_is_accepted(zone: str) -> None:
    assert LineConfig.model_validate(line_body(API_EXAMPLE, timezone=zone)).timezone == zone


def test_a_line_configuration_cannot_be_changed_in_place() -> None:
    config = LineConfig.model_validate(line_body(API_EXAMPLE))

    with pytest.raises(ValidationError):
        config.limit = 1  # type: ignore[misc]
