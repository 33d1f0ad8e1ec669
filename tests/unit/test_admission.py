"""Admission past capacity (orchestrator/admission.py): a bound on user events in flight,
adapted to the throughput, refusing with a time to retry."""

from __future__ import annotations

import pytest

from netfate.orchestrator.admission import BURST, Admission, Gradient, Overloaded


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
    a.gradient.value = 1e6  # the latency gradient is tested apart
    assert a.current_limit() == 4  # nothing finished yet: the floor
    for _ in range(400):  # 400 events finish in 2 s: 200/s
        a.enter()
    for k in range(400):
        clock[0] = 100.0 + (k + 1) * 0.005
        a.leave()
    assert 150 <= a.rate <= 250
    assert a.current_limit() == pytest.approx(a.rate * 0.5, abs=1)
    a2 = Admission(limit=10, target_s=0.5, floor=4)
    a2.rate, a2.gradient.value = 1000.0, 1e6
    assert a2.current_limit() == 10  # never past max_events_in_flight


def test_the_gradient_holds_while_events_take_their_usual_time() -> None:
    g = Gradient(initial=32, minimum=2)
    for _ in range(200):
        g.sample(0.020, in_flight=30)  # limited (30 of 32 in use), usual latency
    assert g.limit() > 32  # it grows (by QUEUE x SMOOTHING an event) while latency is usual


def test_the_gradient_shrinks_when_queueing_lengthens_events_and_regrows_after() -> None:
    g = Gradient(initial=32, minimum=2)
    for _ in range(50):
        g.sample(0.020, in_flight=4)  # quiet: the usual latency is learnt (20 ms)
    assert g.limit() == 32
    for _ in range(100):  # overload: events take 10x their usual time, the limit in use
        g.sample(0.200, in_flight=max(1, g.limit()))
    assert g.limit() <= 4
    small = g.limit()
    for _ in range(60):  # quiet again: few in flight, usual latency
        g.sample(0.020, in_flight=1)
    assert small < g.limit() == 32  # back to taking a burst, never past `initial` so


def test_a_slower_kind_of_event_when_quiet_becomes_the_usual() -> None:
    g = Gradient(initial=32, minimum=2)
    g.sample(0.020, in_flight=1)
    for _ in range(3000):  # VM starts: 3 s each, never more than a few in flight
        g.sample(3.0, in_flight=2)
    assert g.long > 1.0  # learnt while not limited
    for _ in range(40):  # now limited, at that usual time: no shrinking
        g.sample(3.0, in_flight=max(1, g.limit()))
    assert g.limit() >= 32


def test_admission_takes_the_smallest_limit_and_feeds_the_gradient() -> None:
    a = Admission(limit=256, target_s=0.5, floor=32)
    assert a.current_limit() == BURST  # a quiet orchestrator's first burst
    a.gradient.value = 3.0
    assert a.current_limit() == 3
    entered = a.enter()
    a.leave(entered)
    assert a.in_flight == 0 and a.gradient.short > 0
    a.enter()
    a.leave()  # an event that failed before its plan ran: no latency sample
