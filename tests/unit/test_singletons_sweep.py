"""The leader's sweep of a dead replica's operations repairs their users at once
(orchestrator/singletons.py), not at the next repair pass."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from netfate.orchestrator import orphans, singletons


def test_users_of_operations_a_dead_replica_left_are_repaired_right_after_the_sweep(
        monkeypatch: pytest.MonkeyPatch) -> None:
    swept: list[list[str]] = [[], ["op-cut-short"], [], []]
    calls: list[str] = []

    async def sweep(db: Any, locks: Any, me: str) -> list[str]:
        calls.append("sweep")
        return swept.pop(0) if swept else []

    async def sweep_troubleshooting(*_: Any) -> bool:
        return False

    async def repairs_run() -> list[Any]:
        calls.append("repairs")
        return []

    monkeypatch.setattr(orphans, "sweep", sweep)
    monkeypatch.setattr(orphans, "sweep_troubleshooting", sweep_troubleshooting)
    monkeypatch.setattr(singletons, "ORPHAN_SWEEP_S", 0.01)
    orch = SimpleNamespace(db=object(), troubleshoots=None,
                           replica=SimpleNamespace(locks=object(), incarnation="r1-me"),
                           repairs=SimpleNamespace(run=repairs_run))

    async def main() -> None:
        task = asyncio.create_task(singletons.Singletons(orch).sweep_loop())  # type: ignore[arg-type]
        while len(calls) < 6:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(main())
    # Only the sweep that ended something is followed by a repair pass.
    assert calls[:5] == ["sweep", "sweep", "repairs", "sweep", "sweep"]
