"""Bring back the testbed's processes that died (a crash, a kill -9), each through its owner.

The testbed starts the orchestrator, the controller, one agent per node and the access
services of each CPE (testbed/processes.py records their PIDs). Some of those start children
of their own, recorded by the supervisor in their state directories: the orchestrator's
nats-server and FreeRADIUS, each access service's dnsmasq. A dead child is brought back by
restarting its owner, which starts it again with everything it needs (a fresh dnsmasq
without its access service would never be told of a new host reservation); a dead owner's
leftovers are cleaned the way `testbed down` cleans them, and `lifecycle.start_services`
starts every testbed process that is not running.

Shared by `netfate chaos` (issue #16) and `testbed up` restarting what died (#12).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netfate import paths
from netfate.supervisor import ours, read_record
from netfate.testbed import lifecycle, processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology


@dataclass(frozen=True)
class Child:
    """A process a testbed process started: its pidfile, what it must still run, its owner."""

    name: str
    pidfile: Path
    programs: tuple[str, ...]
    owner: str


def children(topo: Topology) -> list[Child]:
    """The recorded children of the testbed's processes (whether or not they run)."""
    orch = paths.run_dir() / "orchestrator"
    out = [Child("nats-server", orch / "nats" / "nats-server.pid", ("nats-server",),
                 "orchestrator"),
           Child("freeradius", orch / "fate-radius" / "freeradius.pid",
                 ("freeradius", "radiusd"), "orchestrator")]
    for n in topo.nodes:
        if n.role == "cpe":
            out.append(Child(f"dnsmasq-{n.name}",
                             paths.run_dir() / "access" / n.name / "dnsmasq.pid",
                             ("dnsmasq",), f"access-{n.name}"))
    return out


def child_alive(c: Child) -> bool:
    rec = read_record(c.pidfile)
    return rec is not None and ours(rec, c.programs)


def dead(topo: Topology) -> list[str]:
    """The testbed processes and children that should run and do not, by name."""
    out = [name for name in _expected(topo) if not processes.alive(name)]
    out += [c.name for c in children(topo) if not child_alive(c)]
    return out


def _expected(topo: Topology) -> list[str]:
    return (["orchestrator", "controller"]
            + [f"access-{n.name}" for n in topo.nodes if n.role == "cpe"]
            + [f"agent-{n.name}" for n in topo.nodes])


def restart_dead(topo: Topology, settings: TestbedSettings | None = None,
                 progress: lifecycle.Progress = lifecycle._noop) -> list[str]:
    """Restart what died (see the module's doc); returns once every node has registered
    again and every switch is programmed (lifecycle.start_services). The names of the
    processes restarted, owners included. DriverError if one does not come back."""
    from netfate.access.services import cleanup as access_cleanup

    restarted = []
    for c in children(topo):
        if not child_alive(c) and processes.alive(c.owner):
            progress(f"{c.name} died: restarting its owner {c.owner}")
            processes.stop(c.owner)
            restarted.append(c.owner)
    for name in _expected(topo):
        if processes.alive(name):
            continue
        if name.startswith("access-"):  # its namespace, veth and dnsmasq are left over
            node = name.removeprefix("access-")
            access_cleanup(node, paths.run_dir() / "access" / node)
        if name not in restarted:
            restarted.append(name)
    if restarted:
        lifecycle.start_services(topo, progress, settings)
    return restarted
