"""Latency figures: percentiles, a histogram and its picture. Pure."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rich.table import Table
from rich.text import Text

# Bucket edges in milliseconds: roughly 1-2.5-5 per decade, from "instant" to "stuck".
LATENCY_EDGES_MS: Final = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
PERCENTILES: Final = (50.0, 90.0, 95.0, 99.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the closest ranks
    (numpy's default), so p50 of an even count is the mean of the middle two."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class Summary:
    count: int
    minimum: float
    mean: float
    maximum: float
    percentiles: dict[float, float]


def summarize(values: Sequence[float], qs: Sequence[float] = PERCENTILES) -> Summary | None:
    if not values:
        return None
    return Summary(
        count=len(values),
        minimum=min(values),
        mean=sum(values) / len(values),
        maximum=max(values),
        percentiles={q: percentile(values, q) for q in qs},
    )


@dataclass(frozen=True)
class Bucket:
    """Values v with low <= v < high; None is an open end."""

    low: float | None
    high: float | None
    count: int

    @property
    def label(self) -> str:
        if self.low is None and self.high is not None:
            return f"< {duration(self.high)}"
        if self.high is None and self.low is not None:
            return f">= {duration(self.low)}"
        if self.low is not None and self.high is not None:
            return f"{duration(self.low)} - {duration(self.high)}"
        return "all"


def histogram(values: Sequence[float], edges: Sequence[float] = LATENCY_EDGES_MS) -> list[Bucket]:
    """Counts per bucket: below the first edge, between each pair, from the last edge up.
    Every value lands in exactly one bucket."""
    if list(edges) != sorted(set(edges)):
        raise ValueError("edges must be strictly increasing")
    bounds: list[float | None] = [None, *edges, None]
    counts = [0] * (len(edges) + 1)
    for value in values:
        index = sum(1 for edge in edges if value >= edge)
        counts[index] += 1
    return [Bucket(bounds[i], bounds[i + 1], counts[i]) for i in range(len(counts))]


def trimmed(buckets: Sequence[Bucket]) -> list[Bucket]:
    """Without the empty buckets at either end."""
    filled = [i for i, bucket in enumerate(buckets) if bucket.count]
    if not filled:
        return []
    return list(buckets[filled[0] : filled[-1] + 1])


def duration(ms: float) -> str:
    """250 -> "250 ms", 2500 -> "2.5 s"."""
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def histogram_table(buckets: Sequence[Bucket], title: str, width: int = 40) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", show_edge=False)
    table.add_column("Latency", justify="right", no_wrap=True)
    table.add_column("Orders", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("", no_wrap=True)
    shown = trimmed(buckets)
    total = sum(bucket.count for bucket in buckets) or 1
    peak = max((bucket.count for bucket in shown), default=0) or 1
    for bucket in shown:
        cells = bucket.count * width // peak
        if bucket.count and not cells:
            cells = 1
        table.add_row(
            bucket.label,
            str(bucket.count),
            f"{bucket.count / total:.1%}",
            Text("█" * cells, style="cyan"),
        )
    return table


def percentile_line(summary: Summary) -> str:
    parts = [f"p{q:g} {duration(v)}" for q, v in summary.percentiles.items()]
    return "  ".join(
        [f"min {duration(summary.minimum)}", *parts, f"max {duration(summary.maximum)}"]
    )
