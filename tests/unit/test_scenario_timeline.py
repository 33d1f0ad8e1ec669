"""A scenario's timeline (scenarios/timeline.py): each mark said and kept with its time."""

from __future__ import annotations

import time

from netfate.scenarios.timeline import marker


def test_each_mark_is_said_and_kept_in_order_with_seconds_since_the_start() -> None:
    timeline: list[tuple[float, str]] = []
    said: list[tuple[float, str]] = []
    mark = marker(timeline, lambda t, m: said.append((t, m)))
    before = time.monotonic()
    mark("one")
    time.sleep(0.02)
    after = mark("two")
    assert [m for _, m in timeline] == ["one", "two"] == [m for _, m in said]
    assert 0 <= timeline[0][0] < timeline[1][0] and timeline[1][0] >= 0.02
    assert all(round(t, 3) == t for t, _ in timeline)  # kept to the millisecond
    assert said[1][0] >= timeline[1][0] - 0.0005  # said unrounded
    assert before < after <= time.monotonic()  # the time once said, for phases' timing
