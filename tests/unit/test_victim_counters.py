"""The DDoS scenario's victim counters: a rate over a window holding fewer than two samples
(a loaded machine samples slowly) is taken from the samples around it, not reported as 0."""

from __future__ import annotations

from netfate.scenarios.traffic import VictimCounters


def counters(samples: list[tuple[float, dict[str, int]]]) -> VictimCounters:
    c = VictimCounters.__new__(VictimCounters)  # no nft table: only the arithmetic
    c.samples = samples
    return c


def test_a_window_with_two_samples_inside_uses_them() -> None:
    c = counters([(0.0, {"a": 0}), (1.0, {"a": 100}), (2.0, {"a": 300}), (3.0, {"a": 300})])
    assert c.rate(["a"], 0.9, 2.1) == 200.0


def test_a_short_window_between_two_samples_uses_the_ones_around_it() -> None:
    c = counters([(0.0, {"a": 0}), (1.0, {"a": 100}), (1.6, {"a": 400}), (3.0, {"a": 400})])
    assert abs(c.rate(["a"], 1.05, 1.5) - 300 / 0.6) < 1e-6
    assert c.rate(["a", "b"], 1.05, 1.65) == 300 / 2.0  # one inside: the ones around it


def test_no_samples_or_one_is_zero() -> None:
    assert counters([]).rate(["a"], 0.0, 1.0) == 0.0
    assert counters([(0.5, {"a": 9})]).rate(["a"], 0.0, 1.0) == 0.0
