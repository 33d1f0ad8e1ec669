"""Admission past capacity (orchestrator/admission.py): a bound on user events in flight,
adapted to the throughput, refusing with a time to retry."""

from __future__ import annotations

import pytest

from netfate.orchestrator.admission import Admission, Overloaded


def test_no_limit_admits_everything() -> None:
    a = Admission(limit=0)
    for _ in range(10_000):
        a.check("x")
        a.enter()
    assert a.refused == 0


def test_refuses_at_the_limit_with_retry_after_and_admits_again_when_one_leaves() -> None:
    a = Admission(limit=3, retry_after=0.2)
    for _ in range(3):
        a.check("x")
        a.enter()
    with pytest.raises(Overloaded, match="3 events in flight") as err:
        a.check("associating user u1")
    assert err.value.retry_after_header == "1"  # whole seconds, at least 1
    assert a.refused == 1
    a.leave()
    a.check("x")  # room again


def test_limit_follows_throughput_by_littles_law(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("netfate.orchestrator.admission.time.monotonic", lambda: clock[0])
    a = Admission(limit=1000, target_s=0.5, floor=4)
    assert a.current_limit() == 4  # nothing finished yet: the floor
    for _ in range(400):  # 400 events finish in 2 s: 200/s
        a.enter()
    for k in range(400):
        clock[0] = 100.0 + (k + 1) * 0.005
        a.leave()
    assert 150 <= a.rate <= 250
    assert a.current_limit() == pytest.approx(a.rate * 0.5, abs=1)
    a2 = Admission(limit=10, target_s=0.5, floor=4)
    a2.rate = 1000.0
    assert a2.current_limit() == 10  # never past max_events_in_flight
