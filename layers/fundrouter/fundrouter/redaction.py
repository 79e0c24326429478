"""What may be said about an error in logs, traces and dead letters: its kind and the
fields it concerns, never the values. A pydantic ValidationError's text quotes the
input (a customer's id, region, grade, metadata), so it is never logged as is."""

from pydantic import ValidationError


def describe(error: BaseException) -> str:
    """``ValidationError: customer.region (string_pattern_mismatch), amount (int_type)``."""
    if isinstance(error, ValidationError):
        fields = ", ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(root)'} ({e['type']})"
            for e in error.errors()
        )
        return f"{type(error).__name__}: {fields}"
    return type(error).__name__


class Undecodable(ValueError):
    """A stored item or stream image that does not decode; says only which fields."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"undecodable item: {describe(error)}")
