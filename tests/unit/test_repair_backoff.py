"""A repair that is needed again after it ran did not help (an NF refusing the user's
configuration, a node that keeps failing): it is made again 15, 30, 60 ... s apart, at most
5 min, not every 15 s for ever (orchestrator/repair.py, after Kubernetes'
CrashLoopBackOff). Another repair, or none needed, starts anew."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from netfate.orchestrator import repair
from netfate.orchestrator.reconcile import Repair


def _repairs(monkeypatch: pytest.MonkeyPatch, todo: list[list[Repair]]) -> tuple[Any, list]:
    async def read(fn: Any, *a: Any) -> list[Any]:
        return []

    orch = SimpleNamespace(
        db=SimpleNamespace(read=read),
        coordinator=SimpleNamespace(busy=lambda user: False,
                                    locks=SimpleNamespace(shared=None)),
        switches=None, ports_reported=set(), settings=SimpleNamespace(user_idle_timeout=0),
        hub=SimpleNamespace(publish=lambda *a: None))
    monkeypatch.setattr(repair, "user_repairs", lambda *a: todo[0])
    made: list[tuple[float, str]] = []
    r = repair.Repairs(orch)  # type: ignore[arg-type]

    async def replay(rep: Repair, t: float) -> None:
        made.append((t, rep.why))

    monkeypatch.setattr(r, "_replay", replay)
    return r, made


def test_the_same_repair_again_backs_off_to_five_minutes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    todo = [[Repair("converge", "u1", "cpe1", "02:00:00:00:00:01", "0 NFs wanted for 1")]]
    r, made = _repairs(monkeypatch, todo)
    for t in range(0, 1500, 5):
        asyncio.run(r.run(float(t)))
    times = [t for t, _ in made]
    assert times[:7] == [0, 15, 45, 105, 225, 465, 765]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == repair.MAX_RETRY_S and gaps[-1] == repair.MAX_RETRY_S


def test_another_repair_or_none_needed_starts_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Repair("converge", "u1", "cpe1", "02:00:00:00:00:01", "0 NFs wanted for 1")
    todo = [[first]]
    r, made = _repairs(monkeypatch, todo)
    for t in (0, 15, 30, 45, 60, 105):
        asyncio.run(r.run(float(t)))
    assert [t for t, _ in made] == [0, 15, 45, 105]
    assert r.wait_s(first) == 120
    todo[0] = []  # repaired: nothing to do
    asyncio.run(r.run(110.0))
    todo[0] = [first]  # it broke again: 15 s after the last repair, not 120
    assert r.wait_s(first) == repair.RETRY_S
    asyncio.run(r.run(120.0))
    assert [t for t, _ in made][-1] == 120
    other = Repair("converge", "u1", "cpe1", "02:00:00:00:00:01", "chain [], requires ['x']")
    todo[0] = [other]
    asyncio.run(r.run(125.0))
    asyncio.run(r.run(135.0))
    assert [t for t, _ in made][-1] == 135 and made[-1][1] == other.why
