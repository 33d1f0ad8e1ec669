"""A DC hosting the NFs of users' chains fails (issue 11, "Node failure"), on the real data
plane: the DC's agent is killed with SIGKILL and its NFs' namespaces removed while users'
chains cross it (their CPEs and the PE have no room, so their firewalls run in a DC). They
are served again through replacements on the other DC, the node of the right tier that is
left, from the last checkpoint; when the DC's agent returns, what it still held is removed.
One stack for the module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from netfate.api_auth import BearerAuth
from netfate.drivers import netns
from netfate.roaming.probes import EchoServer
from netfate.roaming.session import running_at, wait_for
from netfate.testbed import lifecycle, processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology

from .test_node_failure import IDLE_S
from .test_overlay import echo
from .test_roaming import ALLOWED, DENIED, INET, connects, leftovers, login

TOPOLOGY = """
name: netfate-dc-failure-test
nodes:
  - {name: core, role: pe, mem_mb: 8}
  - {name: dc1, role: dc, uplink: core}
  - {name: dc2, role: dc, uplink: core}
  - {name: cpe1, role: cpe, uplink: core, mem_mb: 8}
  - {name: cpe2, role: cpe, uplink: core, mem_mb: 8}
hosts:
  - {name: inet, role: internet, attach: core}
  - {name: client1, role: client, attach: cpe1, address: 10.90.1.1}
  - {name: client2, role: client, attach: cpe2, address: 10.90.1.2}
"""
USERS = {"user1": "client1", "user2": "client2"}


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    f = Path(tmp_path_factory.mktemp("dcfail")) / "dcfail.yaml"
    f.write_text(TOPOLOGY)
    return load_topology(f)


def served_stack(topo: Topology) -> Iterator[httpx.Client]:
    """The whole stack on `topo`, echo servers on the internet host at ALLOWED and DENIED,
    users idle only after IDLE_S (longer than an outage); torn down whatever happens."""
    lifecycle.down()
    api = httpx.Client(base_url=lifecycle.api_url() + "/api/v1", timeout=30,
                       auth=BearerAuth())
    servers: list[EchoServer] = []
    try:
        lifecycle.up(topo, settings=TestbedSettings(idle_timeout=IDLE_S))
        servers = [EchoServer("fate-h-inet", INET, p) for p in (ALLOWED, DENIED)]
        yield api
    finally:
        for s in servers:
            s.close()
        api.close()
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)


@pytest.fixture(scope="module")
def stack(topo: Topology) -> Iterator[httpx.Client]:
    yield from served_stack(topo)


def _dc_of(api: httpx.Client, user: str) -> str:
    (node,) = running_at(api, user).values()
    return node


def test_dc_agent_killed_users_crossing_it_served_through_the_other_dc(
        stack: httpx.Client, topo: Topology) -> None:
    api = stack
    for user, host in USERS.items():
        login(api, topo, host, user)
    where = {u: _dc_of(api, u) for u in USERS}
    assert set(where.values()) <= {"dc1", "dc2"}, where
    failed = where["user1"]
    other = "dc2" if failed == "dc1" else "dc1"
    crossing = sorted(u for u, n in where.items() if n == failed)  # user1, maybe user2
    r = api.post("/checkpoints")  # as the periodic pass would have, by now
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    processes.stop(f"agent-{failed}", sig=9)
    gone = [ns for u in crossing for ns in leftovers(api, u, failed)]
    assert gone, f"{crossing}'s firewalls had namespaces on {failed}"
    for ns in gone:  # the NFs die with their node
        netns.delete(ns)
    try:
        for u in crossing:
            want = {f"{other}-{u}-firewall": other}
            wait_for(lambda u=u, want=want: running_at(api, u) == want, 90,
                     f"{u}'s replacement firewall on {other}")
        for u in crossing:
            ns = topo.host(USERS[u]).netns
            wait_for(lambda ns=ns: connects(ns, ALLOWED), 30, f"{u} served again")
        served_s = time.monotonic() - t0
        print(f"\nDC FAILOVER {failed} -> {other}: {crossing} re-served after "
              f"{served_s:.2f}s (kill -9 to the last user's first connection)")
        for u, host in USERS.items():
            ns = topo.host(host).netns
            assert echo(ns, ALLOWED), f"{u}: 20 kB both ways through the DC firewall"
            assert not connects(ns, DENIED), f"{u}: the replacement applies their rules"
        nodes = {n["name"]: n for n in api.get("/nodes").json()}
        assert nodes[failed]["online"] is False
        moved = [o for o in api.get("/vnf_lcm_op_occs").json()
                 if o["operation"] == "MIGRATE" and o["operation_state"] == "COMPLETED"]
        assert len(moved) >= len(crossing), moved
    except Exception:
        import json
        import shutil

        shutil.copy(processes.pid_dir() / "orchestrator.log", "/tmp/dcfail-orch.log")
        with open("/tmp/dcfail-api.json", "w") as f:
            json.dump({p: api.get(p).json() for p in ("/vnf_lcm_op_occs", "/vnf_instances",
                                                     "/steering_rules", "/nodes")}, f,
                      indent=1)
        raise
    finally:
        lifecycle.start_services(topo)  # the DC's agent comes back
    for u in crossing:
        wait_for(lambda u=u: leftovers(api, u, failed) == [], 30, f"nothing left on {failed}")
    wait_for(lambda: {n["name"]: n["online"] for n in api.get("/nodes").json()}[failed], 30,
             f"{failed} online again")
    for u, host in USERS.items():
        ns = topo.host(host).netns
        assert connects(ns, ALLOWED) and not connects(ns, DENIED), u
        assert _dc_of(api, u) in ("dc1", "dc2")
