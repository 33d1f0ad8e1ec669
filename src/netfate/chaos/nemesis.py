"""The nemesis: kill -9 one process of the testbed, chosen at random among the PIDs the
testbed recorded (never by name), and bring it back.

Targets: the testbed's processes (orchestrator, controller, agents, access services:
testbed/processes.py), their recorded children (nats-server, FreeRADIUS, dnsmasq:
testbed/restart.py) and the daemons of running NFs (`<nf dir>/run/<name>.pid`, "PID
STARTTIME", written by the bundles' common.sh). Every PID is checked to still be the
process recorded (its start time, and its program) before the signal.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from netfate import paths
from netfate.errors import InvalidInput, NetfateError
from netfate.supervisor import Record, ours, read_record
from netfate.testbed import processes, restart
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology


@dataclass(frozen=True)
class Target:
    """A killable process: `kind` testbed, child or nf; `name` what it is."""

    kind: str
    name: str
    record: Record
    programs: tuple[str, ...] = ()


def nf_daemon_record(pidfile: Path) -> Record | None:
    """An NF daemon's pidfile: "PID STARTTIME" (common.sh's daemon_start)."""
    try:
        parts = pidfile.read_text().split()
        return Record(int(parts[0]), int(parts[1]) if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def targets(topo: Topology) -> list[Target]:
    """Every process the testbed recorded that runs now."""
    out = []
    for name in processes.recorded():
        rec = read_record(processes.pid_dir() / f"{name}.pid")
        if rec is not None and ours(rec, (processes.MARK,)):
            out.append(Target("testbed", name, rec, (processes.MARK,)))
    for c in restart.children(topo):
        rec = read_record(c.pidfile)
        if rec is not None and ours(rec, c.programs):
            out.append(Target("child", c.name, rec, c.programs))
    nodes = paths.run_dir() / "nodes"
    for pidfile in sorted(nodes.glob("*/nfs/*/run/*.pid")) if nodes.is_dir() else []:
        rec = nf_daemon_record(pidfile)
        if rec is not None and ours(rec):
            out.append(Target("nf", f"{pidfile.parent.parent.name}/{pidfile.stem}", rec))
    return out


def check_targets(topo: Topology, only: tuple[str, ...]) -> None:
    """InvalidInput for a `--target` prefix no process of the topology's testbed can have
    (a typo would give runs with no fault at all, each reported clean): it must begin a
    testbed process's or child's name, or an NF instance's id ("<node>-...")."""
    fixed = restart._expected(topo) + [c.name for c in restart.children(topo)]
    nodes = [f"{n.name}-" for n in topo.nodes]
    for t in only:
        if not t or len(t) > 128 or not t.isprintable() or any(c.isspace() for c in t):
            raise InvalidInput(f"target {t[:40]!r} must be 1-128 printable characters, "
                               "without spaces")
        if not (any(k.startswith(t) for k in fixed)
                or any(t.startswith(p) or p.startswith(t) for p in nodes)):
            raise InvalidInput(f"target {t!r} names no process of the testbed (they are "
                               f"{', '.join(fixed)}, and NF ids <node>-<owner>-<nf>)")


KILL_WAIT_S = 5.0  # how long a target may take to die after its SIGKILL


class StillAlive(NetfateError):
    """The target still ran `wait` seconds after its SIGKILL (stuck in the kernel)."""


def kill(t: Target, wait: float = KILL_WAIT_S) -> bool:
    """SIGKILL the target if it is still the process recorded; whether it was sent. Returns
    once the target is dead (gone, or a zombie): os.kill returns before the kernel has ended
    it, and a revive in the same step read /proc too soon, saw nats-server still running
    and restarted nothing (docs/chaos.md, seed 5000 run 9). StillAlive after `wait` s."""
    if not ours(t.record, t.programs):
        return False
    try:
        os.kill(t.record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while ours(t.record, t.programs):
        if time.monotonic() >= deadline:
            raise StillAlive(f"{t.name} (pid {t.record.pid}) still runs {wait:g} s after "
                             "SIGKILL")
        time.sleep(0.01)
    return True


@dataclass
class Fault:
    target: str
    kind: str
    pid: int
    at: float            # seconds into the run
    down_s: float        # how long it stayed dead before the restart
    restarted: list[str]
    error: str | None = None


def pick(topo: Topology, rng: random.Random, only: tuple[str, ...] = ()) -> Target | None:
    """A random target (among those whose name starts with one of `only`, if given)."""
    found = [t for t in targets(topo) if not only or t.name.startswith(only)]
    return rng.choice(found) if found else None


def revive(topo: Topology, settings: TestbedSettings) -> list[str]:
    """Bring back what died (the platform itself brings back an NF's daemon)."""
    return restart.restart_dead(topo, settings)
