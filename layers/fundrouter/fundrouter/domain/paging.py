"""A page of a listing and the opaque cursor to the next one."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    next_cursor: str | None = None
