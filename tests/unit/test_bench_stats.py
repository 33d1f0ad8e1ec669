"""The one statistics helper of the benchmarks: linear interpolation between ranks."""

from __future__ import annotations

import statistics

import pytest

from netfate.bench.stats import median, percentile, ratio, summary


def test_percentile_is_linear_between_ranks() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == 2.5 == statistics.median(xs)
    assert percentile(xs, 95) == pytest.approx(3.85)
    data = [float(x) for x in range(1, 101)]
    want = statistics.quantiles(data, n=100, method="inclusive")
    assert [percentile(data, q) for q in range(1, 100)] == pytest.approx(want)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_and_ratio() -> None:
    s = summary([1.0, 2.0, 3.0, 10.0])
    assert s == {"p50": 2.5, "p95": 8.95, "p99": 9.79, "min": 1.0, "max": 10.0, "mean": 4.0,
                 "n": 4}
    assert summary([]) == {"n": 0} and median([]) is None and median([1.0, 2.0]) == 1.5
    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
