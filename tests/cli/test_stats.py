"""Percentiles and the latency histogram."""

import pytest
from fundrouter_cli.stats import (
    Bucket,
    duration,
    histogram,
    histogram_table,
    percentile,
    percentile_line,
    summarize,
    trimmed,
)
from rich.console import Console


def test_percentiles_interpolate_between_closest_ranks() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]

    assert percentile(values, 0) == 15
    assert percentile(values, 50) == 35
    assert percentile(values, 100) == 50
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert percentile(values, 90) == pytest.approx(46.0)


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5


def test_one_value_is_every_percentile() -> None:
    assert {percentile([7.0], q) for q in (0, 50, 99, 100)} == {7.0}


def test_percentiles_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0-100"):
        percentile([1.0], 101)


def test_summary_of_a_thousand_values() -> None:
    summary = summarize([float(v) for v in range(1, 1001)])

    assert summary is not None
    assert (summary.count, summary.minimum, summary.maximum) == (1000, 1, 1000)
    assert summary.mean == 500.5
    assert summary.percentiles[99.0] == pytest.approx(990.01)
    assert summarize([]) is None
    assert percentile_line(summary).startswith("min 1.0 ms  p50 500 ms")


def test_every_value_lands_in_exactly_one_bucket_low_edge_inclusive() -> None:
    buckets = histogram([5, 10, 24.9, 25, 99, 100, 20_000], edges=(10, 25, 100))

    assert [(b.low, b.high, b.count) for b in buckets] == [
        (None, 10, 1),
        (10, 25, 2),
        (25, 100, 2),
        (100, None, 2),
    ]
    assert sum(b.count for b in buckets) == 7


def test_histogram_edges_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        histogram([1.0], edges=(10, 10))


def test_empty_ends_are_trimmed_for_display() -> None:
    buckets = [
        Bucket(None, 1, 0),
        Bucket(1, 2, 3),
        Bucket(2, 3, 0),
        Bucket(3, 4, 1),
        Bucket(4, None, 0),
    ]

    assert [b.low for b in trimmed(buckets)] == [1, 2, 3]
    assert trimmed([Bucket(None, None, 0)]) == []


def test_bucket_labels_and_durations() -> None:
    assert Bucket(None, 10, 0).label == "< 10 ms"
    assert Bucket(250, 1000, 0).label == "250 ms - 1 s"
    assert Bucket(10_000, None, 0).label == ">= 10 s"
    assert duration(2500) == "2.5 s"
    assert duration(3.25) == "3.2 ms"


def test_the_histogram_draws_bars_proportional_to_counts() -> None:
    console = Console(record=True, width=100)
    values = [5.0] * 30 + [30.0] * 15 + [600.0]

    console.print(histogram_table(histogram(values), "Latency", width=20))
    text = console.export_text()

    rows = {line.split("│")[0].strip(): line for line in text.splitlines() if "│" in line}
    assert rows["< 10 ms"].count("█") == 20
    assert rows["25 ms - 50 ms"].count("█") == 10
    assert rows["500 ms - 1 s"].count("█") == 1  # any count shows
    assert rows["100 ms - 250 ms"].count("█") == 0  # empty inside the range: shown, no bar
    assert "65.2%" in rows["< 10 ms"]
    assert ">= 10 s" not in text
