"""The nemesis's kill returns only once its target is dead (docs/chaos.md, seed 5000 run 9).

SIGKILL is asynchronous: os.kill returns before the target has exited. When the run revived
the testbed in the same workload step (back_step == fault_step), `restart.restart_dead` read
/proc before the kernel had ended nats-server, saw it still running and restarted nothing;
the bus stayed down for the whole check, so the controller's idle reports (repeated every
idle period) never reached the orchestrator and idle users' NFs stayed wanted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netfate.chaos import nemesis
from netfate.supervisor import Record, ours
from netfate.supervisor.records import start_time


class _SlowDeath:
    """A process that takes a few looks at /proc to die after its SIGKILL, as a busy
    2-core machine gives it: ours() stays true that long after os.kill returned."""

    def __init__(self, looks: int) -> None:
        self.looks = looks
        self.killed = False

    def kill(self, pid: int, sig: int) -> None:
        self.killed = True

    def ours(self, rec: Record, programs: tuple[str, ...] = ()) -> bool:
        if not self.killed:
            return True
        self.looks -= 1
        return self.looks >= 0


def test_kill_returns_only_once_the_target_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _SlowDeath(looks=5)
    monkeypatch.setattr(nemesis.os, "kill", slow.kill)
    monkeypatch.setattr(nemesis, "ours", slow.ours)
    t = nemesis.Target("child", "nats-server", Record(4242, 1), ("nats-server",))
    assert nemesis.kill(t)
    # What restart.dead() asks next (child_alive): the target must read as dead now.
    assert not slow.ours(t.record, t.programs)


def test_a_real_process_is_dead_when_kill_returns() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = Record(proc.pid, start_time(proc.pid))
        assert ours(rec)
        assert nemesis.kill(nemesis.Target("nf", "sleeper", rec))
        assert not ours(rec)  # a zombie (not reaped yet) is not running
    finally:
        proc.kill()
        proc.wait()


def test_a_target_that_outlives_the_wait_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _SlowDeath(looks=10**9)
    monkeypatch.setattr(nemesis.os, "kill", slow.kill)
    monkeypatch.setattr(nemesis, "ours", slow.ours)
    t = nemesis.Target("child", "nats-server", Record(4242, 1), ("nats-server",))
    with pytest.raises(nemesis.StillAlive, match=r"nats-server .*4242.* 0.05 s after SIGKILL"):
        nemesis.kill(t, wait=0.05)
