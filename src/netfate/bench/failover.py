"""`netfate bench failover`: the time to serve a user again after the node running their NFs
fails (issue #11), on the testbed.

Each run: a user with a personal firewall at one CPE; that CPE's agent is killed with
SIGKILL and the firewall's namespace removed (the node is gone as far as the platform can
tell), and the user's station moves to the other CPE, whose access services and switch are
up. Measured from the kill: the replacement firewall running, and the user's first TCP
connection through it. Then the agent comes back and what it still held is removed
(measured too). Baseline, same run: the same move with no fault (a make-before-break
migration). A DC whose agent dies while users' chains cross it is measured by
`netfate bench chain` (bench/chain_failover.py).

The failover time is bounded by the orchestrator's `node_timeout` (the grace period before
a silent node is declared down) plus its `reconcile_interval`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from netfate.api_auth import BearerAuth
from netfate.bench.stats import ratio, summary
from netfate.drivers import netns
from netfate.roaming.probes import EchoServer, reachable
from netfate.roaming.session import ensure_user, portal_login, running_at, wait_for
from netfate.testbed import lifecycle, processes
from netfate.testbed.move import move
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology

PORT = 5201
USER, HOST = "bench-failover", "client1"


def _namespaces(user: str, node: str) -> list[str]:
    return [n for n in lifecycle.status()["namespaces"] if n.startswith(f"fate-{node}-{user}-")]


def _served(topo: Topology, host: str) -> Callable[[], bool]:
    ns, ip = topo.host(host).netns, topo.internet_address
    return lambda: reachable(ns, ip, PORT, 0.5)


def _fail_over(api: httpx.Client, topo: Topology, src: str, dst: str) -> dict[str, Any]:
    """Kill `src`'s agent and its NFs, move the station to `dst`: the timings (s)."""
    t0 = time.monotonic()
    processes.stop(f"agent-{src}", sig=9)
    for ns in _namespaces(USER, src):
        netns.delete(ns)
    move(HOST, dst)
    want = {f"{dst}-{USER}-firewall": dst}
    wait_for(lambda: running_at(api, USER) == want, 120, "the replacement firewall")
    running = time.monotonic() - t0
    wait_for(_served(topo, HOST), 30, "the user served again")
    served = time.monotonic() - t0
    restored = f"{dst}-{USER}-firewall" in {c["instance_id"]
                                            for c in api.get("/checkpoints").json()}
    t1 = time.monotonic()
    lifecycle.start_services(topo)
    wait_for(lambda: _namespaces(USER, src) == [], 60, f"nothing left at {src}")
    return {"from": src, "to": dst, "replacement_running_s": round(running, 3),
            "served_s": round(served, 3), "state_restored": restored,
            "leftovers_removed_s": round(time.monotonic() - t1, 3)}


def _roam(api: httpx.Client, topo: Topology, dst: str) -> float:
    """The baseline: the same move with no fault, to the user served (s)."""
    t0 = time.monotonic()
    move(HOST, dst)
    want = {f"{dst}-{USER}-firewall": dst}
    wait_for(lambda: running_at(api, USER) == want, 60, "the migrated firewall")
    wait_for(_served(topo, HOST), 30, "the user served")
    return round(time.monotonic() - t0, 3)


def run(runs: int = 1, say: Callable[[str], None] = lambda _: None,
        testbed: TestbedSettings | None = None) -> dict[str, Any]:
    """``testbed``: the testbed's settings (ports, topology); its idle timeout is raised to
    300 s so nobody goes idle while unserved. Brings the testbed up and down itself."""
    tb = (testbed or TestbedSettings()).model_copy(update={"idle_timeout": 300})
    topo = load_topology(tb.topology)
    api = httpx.Client(base_url=lifecycle.api_url(tb) + "/api/v1", timeout=30,
                       auth=BearerAuth())
    servers: list[EchoServer] = []
    failovers: list[dict[str, Any]] = []
    roams: list[float] = []
    try:
        say("testbed up")
        lifecycle.down()
        lifecycle.up(topo, settings=tb)
        inet = next(h for h in topo.hosts if h.role == "internet")
        servers.append(EchoServer(inet.netns, topo.internet_address, PORT))
        ensure_user(api, USER, "bench-secret-1", ["firewall"])
        portal_login(topo, HOST, USER, "bench-secret-1")
        wait_for(lambda: bool(running_at(api, USER)), 30, "the firewall")
        wait_for(_served(topo, HOST), 10, "the user's steering")
        at = "cpe1"
        for k in range(runs):
            dst = "cpe2" if at == "cpe1" else "cpe1"
            say(f"run {k + 1}/{runs}: baseline roam {at} -> {dst}")
            roams.append(_roam(api, topo, dst))
            at, dst = dst, at
            api.post("/checkpoints")  # as the periodic pass would have, by now
            say(f"run {k + 1}/{runs}: {at} fails, the user moves to {dst}")
            failovers.append(_fail_over(api, topo, at, dst))
            at = dst
    finally:
        for s in servers:
            s.close()
        api.close()
        lifecycle.down()
    served = summary([f["served_s"] for f in failovers])
    base = summary(roams)
    return {
        "benchmark": "failover",
        "runs": len(failovers),
        "served_s": served,
        "baseline_roam_s": base,
        "served_p50_ratio_vs_baseline": ratio(served.get("p50"), base.get("p50")),
        "state_restored": sum(bool(f["state_restored"]) for f in failovers),
        "runs_detail": failovers,
    }
