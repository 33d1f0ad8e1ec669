"""Bring the testbed's processes back: every one that died is started again, those that run
are left alone, and the testbed ends in the state it had (the orchestrator's SQLite, the
agents' NF records and the switches' flows all outlive their processes).

The decision is pure (``plan``): from which processes run, which to end first and which to
start. ``revive`` surveys, acts, then waits as `testbed up` does (nodes registered, access
services answering, switches in sync). `testbed up` runs it on a testbed that is up; a chaos
test that kill -9s a process may call it directly.

Processes (their PID records, with start times, under <run dir>/pids; supervisor/records):
the orchestrator (its children nats-server and FreeRADIUS, recorded in its state dir), the SDN
controller, one access service per CPE (its dnsmasq and namespace) and one agent per node. A
process counts as running only if its recorded PID still runs with the recorded start time
and the netfate CLI in its command line; a PID reused by another program is never signalled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netfate import paths
from netfate.supervisor import ours, read_record
from netfate.testbed import processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology

Progress = Callable[[str], None]

ORCHESTRATOR = "orchestrator"
CONTROLLER = "controller"
# The orchestrator's own children: they die with it, and it starts them (again) itself.
ORCHESTRATOR_CHILDREN = ("nats-server", "freeradius")


def expected(topo: Topology) -> list[str]:
    """The testbed's processes for ``topo``, in start order: the orchestrator (it owns the
    bus), the controller, each CPE's access services, each node's agent."""
    return ([ORCHESTRATOR, CONTROLLER]
            + [f"access-{n.name}" for n in topo.nodes if n.role == "cpe"]
            + [f"agent-{n.name}" for n in topo.nodes])


@dataclass(frozen=True)
class Plan:
    """What to do: ``stop`` (run, but must restart: an orchestrator whose nats-server or
    FreeRADIUS died), ``cleanup`` (dead access services whose dnsmasq and namespace may be
    left behind), ``start`` (in order) and ``keep`` (running, untouched)."""

    stop: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)


def plan(names: list[str], running: Mapping[str, bool],
         children_running: Mapping[str, bool]) -> Plan:
    """Pure. ``names``: the processes the testbed has (expected()); ``running``: whether each
    runs (missing: not); ``children_running``: whether the orchestrator's children run
    (missing: not). Dead ones are started, running ones kept; an orchestrator with a dead
    child is stopped and started (it starts its children; the agents reconnect to the bus)."""
    out = Plan()
    for name in names:
        alive = bool(running.get(name))
        if name == ORCHESTRATOR and alive and not all(
                children_running.get(c) for c in ORCHESTRATOR_CHILDREN):
            out.stop.append(name)
            alive = False
        if alive:
            out.keep.append(name)
            continue
        if name.startswith("access-"):
            out.cleanup.append(name)
        out.start.append(name)
    return out


def children_running() -> dict[str, bool]:
    """Whether the orchestrator's nats-server and FreeRADIUS run (by their PID records)."""
    from netfate.bus.server import PROGRAMS as NATS
    from netfate.radius.server import PIDFILE, private_dir
    from netfate.radius.server import PROGRAMS as RADIUS

    state = paths.run_dir() / "orchestrator"
    recs = {"nats-server": (state / "nats" / "nats-server.pid", NATS),
            "freeradius": (private_dir(state) / PIDFILE, RADIUS)}
    out = {}
    for name, (pidfile, programs) in recs.items():
        rec = read_record(pidfile)
        out[name] = rec is not None and ours(rec, programs)
    return out


def survey(topo: Topology) -> Plan:
    """The plan for the testbed as it is now."""
    names = expected(topo)
    return plan(names, {n: processes.alive(n) for n in names}, children_running())


def revive(topo: Topology, progress: Progress = lambda _: None,
           settings: TestbedSettings | None = None) -> dict[str, Any]:
    """Start again every process of the testbed that died (see the module doc) and wait
    until the testbed serves; returns {"restarted": [...], "kept": [...], "pids": {...}}.
    Restarted processes run the command line in their record when there is one (the same
    flags as before), else the one `testbed up` builds from ``settings`` (default: those the
    testbed was brought up with). DriverError (with the crash reports) if one does not come
    back; then those started here are ended again."""
    from netfate.testbed import lifecycle

    t = settings or lifecycle.current()
    p = survey(topo)
    records = {n: read_record(processes.pid_dir() / f"{n}.pid") for n in p.start}
    for name in p.stop:
        progress(f"restarting {name} (a process it runs has died)")
        processes.stop(name)
    for name in p.cleanup:
        _cleanup_access(name.removeprefix("access-"))
    restarted = []
    with processes.together():
        for name in p.start:
            rec = records.get(name)
            if rec is None or not rec.argv:
                continue  # never started: lifecycle.start_services builds its command
            progress(f"restarting {name} (was PID {rec.pid})")
            processes.start(name, rec.argv, env=lifecycle.child_env(),
                            ready=_ready(name, t), timeout=30)
            restarted.append(name)
        pids = lifecycle.start_services(topo, progress, t)
    return {"restarted": restarted,
            "started": [n for n in p.start if n not in restarted],
            "kept": p.keep, "pids": pids}


def _ready(name: str, t: TestbedSettings) -> Any:
    from netfate.supervisor import probes

    if name == ORCHESTRATOR:
        return probes.http_ok(f"{t.api_url}/api/v1/health")
    if name == CONTROLLER:
        return probes.tcp_port(t.of_port)
    return None


def _cleanup_access(node: str) -> None:
    """What a killed `access serve` leaves: its dnsmasq, veth and namespace."""
    from netfate.access.services import cleanup

    with contextlib.suppress(Exception):
        cleanup(node, paths.run_dir() / "access" / node)
