"""The one fake clock of the tests: the services read the time through a callable,
and a test sets and moves it."""

from datetime import UTC, datetime, timedelta
from typing import Final

START: Final = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class Clock:
    """Each reading `tick` later than the last (the first `tick` after `now`); with
    no tick every reading is `now`. `advance` jumps ahead."""

    def __init__(self, now: datetime = START, tick: timedelta = timedelta(0)) -> None:
        self.now = now
        self.tick = tick

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ticking(tick: timedelta = timedelta(milliseconds=1)) -> Clock:
    """The first reading at START, each next one `tick` later: listings in a fixed order."""
    return Clock(START - tick, tick)


class Timer:
    """A monotonic timer (seconds, as time.monotonic) the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
