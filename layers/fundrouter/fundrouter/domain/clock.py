"""Time as the domain sees it: timezone-aware UTC, written in one fixed RFC 3339 form
(millisecond precision) so stored timestamps sort as strings."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema


def utc_now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    # isoformat, not strftime: %Y does not pad years before 1000 to four digits.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text_only(value: object) -> object:
    """A JSON number is not a time: pydantic would read it as seconds since 1970."""
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("outside the years 1 to 9999 in UTC") from error


Timestamp = Annotated[
    datetime,
    BeforeValidator(_text_only),
    AfterValidator(_aware),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
