"""The failover part of `netfate bench chain` (issue 11): the time to serve users again after
the node their chain crosses fails, on the whole stack (orchestrator, SDN controller, agents,
FreeRADIUS).

Topology: a PE and two CPEs with no room for a firewall, two DCs; a user at each CPE, so
their firewalls run in a DC and their traffic crosses the overlay to it. Each run: a
checkpoint pass, then the agent of the DC running user 1's firewall is killed with SIGKILL
and the namespaces of the NFs it ran removed (the node is gone as far as the platform can
tell); measured from the kill: every user whose chain crossed it served again through a
replacement on the other DC (their first TCP connection through it), then the agent comes
back and what it still held is removed (measured too). The users stay where they are: only
the steering to the DC changes.

The time is bounded by the orchestrator's `node_timeout` (the grace period before a silent
node is declared down) plus its `reconcile_interval`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from netfate.api_auth import BearerAuth
from netfate.bench.stats import summary
from netfate.drivers import netns
from netfate.roaming.probes import EchoServer, reachable
from netfate.roaming.session import ensure_user, portal_login, running_at, wait_for
from netfate.testbed import lifecycle, processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology, two_cpes_yaml

PORT = 5201
USERS = {"bench-dc1": "client1", "bench-dc2": "client2"}
TOPOLOGY = two_cpes_yaml("netfate-bench-dc-failover", ("dc1", "dc2"))


def _namespaces(user: str, node: str) -> list[str]:
    return [n for n in lifecycle.status()["namespaces"] if n.startswith(f"fate-{node}-{user}-")]


def _served(topo: Topology, host: str) -> Callable[[], bool]:
    ns, ip = topo.host(host).netns, topo.internet_address
    return lambda: reachable(ns, ip, PORT, 0.5)


def _where(api: httpx.Client, user: str) -> str | None:
    nodes = set(running_at(api, user).values())
    return nodes.pop() if len(nodes) == 1 else None


def _fail_dc(api: httpx.Client, topo: Topology, users: dict[str, str]) -> dict[str, Any]:
    """Kill the DC hosting the first user's firewall: the timings (s) for its users."""
    where = {u: _where(api, u) for u in users}
    failed = next(iter(where.values()))
    if failed is None:
        raise RuntimeError(f"no single node runs {next(iter(users))}'s firewall: {where}")
    other = "dc2" if failed == "dc1" else "dc1"
    crossing = [u for u, n in where.items() if n == failed]
    api.post("/checkpoints")  # as the periodic pass would have, by now
    t0 = time.monotonic()
    processes.stop(f"agent-{failed}", sig=9)
    for u in crossing:
        for ns in _namespaces(u, failed):
            netns.delete(ns)
    for u in crossing:
        want = {f"{other}-{u}-firewall": other}
        wait_for(lambda u=u, want=want: running_at(api, u) == want, 120,  # type: ignore[misc]
                 f"{u}'s replacement firewall")
    running = time.monotonic() - t0
    for u in crossing:
        wait_for(_served(topo, users[u]), 30, f"{u} served again")
    served = time.monotonic() - t0
    t1 = time.monotonic()
    lifecycle.start_services(topo)
    for u in crossing:
        wait_for(lambda u=u: _namespaces(u, failed) == [], 60,  # type: ignore[misc]
                 f"nothing left at {failed}")
    return {"failed": failed, "to": other, "users": crossing,
            "replacement_running_s": round(running, 3), "served_s": round(served, 3),
            "leftovers_removed_s": round(time.monotonic() - t1, 3)}


def run(runs: int = 1, say: Callable[[str], None] = lambda _: None,
        testbed: TestbedSettings | None = None) -> dict[str, Any]:
    """`runs` DC failures; brings its own topology up and takes it down (users idle only
    after 300 s, so nobody goes idle while unserved)."""
    tb = (testbed or TestbedSettings()).model_copy(update={"idle_timeout": 300})
    with tempfile.TemporaryDirectory(prefix="netfate-bench-") as tmp:
        f = Path(tmp) / "dc-failover.yaml"
        f.write_text(TOPOLOGY)
        fails = _runs(load_topology(f), tb, runs, say)
    return {"runs": len(fails), "served_s": summary([f["served_s"] for f in fails]),
            "replacement_running_s": summary([f["replacement_running_s"] for f in fails]),
            "runs_detail": fails}


def _runs(topo: Topology, tb: TestbedSettings, runs: int, say: Callable[[str], None]
          ) -> list[dict[str, Any]]:
    api = httpx.Client(base_url=lifecycle.api_url(tb) + "/api/v1", timeout=30,
                       auth=BearerAuth())
    servers: list[EchoServer] = []
    fails: list[dict[str, Any]] = []
    try:
        say("failover: testbed up (two DCs)")
        lifecycle.down()
        lifecycle.up(topo, settings=tb)
        servers.append(EchoServer("fate-h-inet", topo.internet_address, PORT))
        for user, host in USERS.items():
            ensure_user(api, user, "bench-secret-1", ["firewall"])
            portal_login(topo, host, user, "bench-secret-1")
            wait_for(lambda user=user: _where(api, user) in ("dc1", "dc2"), 40,  # type: ignore[misc]
                     f"{user}'s firewall in a DC")
            wait_for(_served(topo, host), 15, f"{user}'s steering")
        for k in range(runs):
            say(f"failover run {k + 1}/{runs}: the DC hosting {next(iter(USERS))} fails")
            fails.append(_fail_dc(api, topo, USERS))
    finally:
        for s in servers:
            s.close()
        api.close()
        lifecycle.down()
    return fails
