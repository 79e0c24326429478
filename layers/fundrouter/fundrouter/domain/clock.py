"""Time as the domain sees it: timezone-aware UTC, written in one fixed RFC 3339 form
(millisecond precision) so stored timestamps sort as strings."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def utc_now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    return moment.astimezone(UTC)


Timestamp = Annotated[
    datetime, AfterValidator(_aware), PlainSerializer(format_timestamp, return_type=str)
]
