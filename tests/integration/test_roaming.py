"""Roaming on the testbed (issue: the personal firewall follows its user with its state): the
NetFATE case study as tests. Real namespaces, OVS, the SDN controller, FreeRADIUS, agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.access import dhcp_client
from netfate.roaming.handover import handover
from netfate.roaming.probes import TcpStream, UdpProbe, reachable
from netfate.roaming.session import portal_ip, portal_login, running_at, wait_for
from netfate.testbed import lifecycle, processes
from netfate.testbed.move import _inside, move
from netfate.testbed.topology import Topology, load_topology

from .helpers import ALLOWED, DENIED, INET, keep_evidence, whole_stack
from .test_orchestrator import user_flows

IDLE_S = 4


def _stack(topo: Topology) -> Iterator[httpx.Client]:
    """The whole stack on `topo`, users idle after IDLE_S (helpers.whole_stack)."""
    return whole_stack(topo, IDLE_S)


@pytest.fixture
def stack(testbed_up: None) -> Iterator[httpx.Client]:
    yield from _stack(load_topology())


def login(api: httpx.Client, topo: Topology, host: str, user: str) -> None:
    r = api.post("/users", json={
        "name": user, "password": f"{user}-secret", "required_nfs": ["firewall"],
        "nf_config": {"firewall": {"rules": [{"action": "deny", "proto": "tcp",
                                              "dport": DENIED}]}}})
    assert r.status_code == 201, r.text
    portal_login(topo, host, user, f"{user}-secret")
    wait_for(lambda: bool(running_at(api, user)), 30, f"{user}'s firewall")
    ns = topo.host(host).netns
    wait_for(lambda: connects(ns, ALLOWED), 10, f"{user}'s steering")


def connects(ns: str, port: int) -> bool:
    return reachable(ns, INET, port)


def logged_in_with_stream(api: httpx.Client, topo: Topology) -> tuple[str, TcpStream]:
    """user1 logged in at cpe1 through the portal, a TCP stream running from client1."""
    login(api, topo, "client1", "user1")
    c1 = topo.host("client1").netns
    return c1, TcpStream(c1, INET, ALLOWED).start()


def leftovers(api: httpx.Client, user: str, node: str) -> list[str]:
    return [n for n in lifecycle.status()["namespaces"] if n.startswith(f"fate-{node}-{user}-")]


def test_case_study_tcp_survives_denied_stays_denied_then_back_and_idle(
        stack: httpx.Client) -> None:
    api, topo = stack, load_topology()
    c1, tcp = logged_in_with_stream(api, topo)
    probe = UdpProbe(c1, "fate-h-inet", INET).start()
    try:
        time.sleep(0.5)
        h = handover(api, "client1", "user1", "cpe2", probe, tcp)
        assert h.tcp_survived, h
        assert running_at(api, "user1") == {"cpe2-user1-firewall": "cpe2"}
        assert not connects(c1, DENIED), "the firewall's rules moved with it"
        assert leftovers(api, "user1", "cpe1") == []
        assert h.from_association_ms is not None and h.gap_ms < 5000, h
        # the old NF deleted on cpe1 too (its record gone), after the state moved
        assert h.source_gone_ms is not None and h.migrated_in_ms is not None
        assert h.source_gone_ms >= h.migrated_in_ms, h
        # back to cpe1
        h = handover(api, "client1", "user1", "cpe1", probe, tcp)
        assert h.tcp_survived and running_at(api, "user1") == {"cpe1-user1-firewall": "cpe1"}
        # The old NF goes after the steering switched (make-before-break): its namespace
        # may outlive the database's record by a moment.
        wait_for(lambda: leftovers(api, "user1", "cpe2") == [], 10, "nothing left at cpe2")
        # two quick moves: the last one wins, nothing is left on the way
        move("client1", "cpe2")
        time.sleep(0.05)
        move("client1", "cpe1")
        wait_for(lambda: running_at(api, "user1") == {"cpe1-user1-firewall": "cpe1"}, 30,
                 "the firewall back at cpe1 after two quick moves")
        wait_for(lambda: connects(c1, ALLOWED), 10, "user1 served at cpe1")
        time.sleep(1)
        assert tcp.alive, tcp.error
        wait_for(lambda: leftovers(api, "user1", "cpe2") == [], 10,
                 "nothing left at cpe2 after two quick moves")
    except Exception:
        keep_evidence(api, "casestudy")
        raise
    finally:
        tcp.stop()
        probe.stop()
    # idle after the moves: released where the user is, nothing anywhere else
    wait_for(lambda: not running_at(api, "user1"), IDLE_S + 30, "the idle release")
    wait_for(lambda: all(leftovers(api, "user1", n) == [] for n in ("cpe1", "cpe2")), 15,
             "the released firewall's namespace to go")
    wait_for(lambda: user_flows("fate-cpe1", "user1") == [], 10, "user1's flows to go")


def test_failed_migration_keeps_the_user_served_from_the_source(stack: httpx.Client) -> None:
    api, topo = stack, load_topology()
    c1, tcp = logged_in_with_stream(api, topo)
    try:
        move("client1", "cpe2")
        # the target agent dies mid-way: after reporting the association, while the
        # firewall is being created there
        wait_for(lambda: any(o["operation"] == "MIGRATE"
                             for o in api.get("/vnf_lcm_op_occs").json()), 5,
                 "the migration to start", step=0.005)
        processes.stop("agent-cpe2", sig=9)
        wait_for(lambda: any(o["operation"] == "MIGRATE" and o["operation_state"] in
                             ("ROLLED_BACK", "FAILED")
                             for o in api.get("/vnf_lcm_op_occs").json()), 40,
                 "the migration to fail")
        op = next(o for o in api.get("/vnf_lcm_op_occs").json() if o["operation"] == "MIGRATE")
        assert op["error"] and op["error"].get("detail"), op
        # still served by the firewall at cpe1 (anchored there), its rules still apply
        assert running_at(api, "user1") == {"cpe1-user1-firewall": "cpe1"}
        assert connects(c1, ALLOWED) and not connects(c1, DENIED)
        assert tcp.alive, tcp.error
        # the agent comes back: whatever the crash left half-made on cpe2 is cleaned up,
        # what cpe2 runs is exactly what the database says, and the repair moves the
        # firewall to where the user is (new connections may wait out that handover's gap)
        lifecycle.start_services(topo)

        def consistent() -> bool:
            on_node = {n.removeprefix("fate-cpe2-") for n in leftovers(api, "user1", "cpe2")}
            in_db = {i.removeprefix("cpe2-") for i, n in running_at(api, "user1").items()
                     if n == "cpe2"}
            return on_node == in_db

        wait_for(lambda: running_at(api, "user1") == {"cpe2-user1-firewall": "cpe2"}
                 and consistent(), 60, "the firewall moved to cpe2, nothing else there")
        wait_for(lambda: connects(c1, ALLOWED), 10, "user1 served at cpe2")
        assert not connects(c1, DENIED)
        assert tcp.alive, tcp.error
    except Exception:
        keep_evidence(api, "roamfail")
        raise
    finally:
        tcp.stop()


def test_three_cpes(testbed_up: None) -> None:
    from importlib import resources

    with resources.as_file(resources.files("netfate.testbed") / "three-cpe.yaml") as f:
        topo = load_topology(Path(f))
    gen = _stack(topo)
    api = next(gen)
    try:
        c1, tcp = logged_in_with_stream(api, topo)
        probe = UdpProbe(c1, "fate-h-inet", INET).start()
        try:
            for dst in ("cpe2", "cpe3"):
                h = handover(api, "client1", "user1", dst, probe, tcp)
                assert h.tcp_survived, h
                assert running_at(api, "user1") == {f"{dst}-user1-firewall": dst}
            assert not connects(c1, DENIED)
            assert all(leftovers(api, "user1", n) == [] for n in ("cpe1", "cpe2"))
            # every CPE's DHCP hands the device its stable address: renewing at cpe3 keeps it
            stable = _inside(c1)[0][0].split("/")[0]
            lease = dhcp_client.lease(c1, requested_ip=stable)
            assert lease.ip == stable and lease.server == portal_ip(topo, "cpe3"), lease
        finally:
            tcp.stop()
            probe.stop()
    finally:
        gen.close()


def test_controller_restart_keeps_traffic_and_resyncs_without_changes(
        stack: httpx.Client) -> None:
    api, topo = stack, load_topology()
    c1, tcp = logged_in_with_stream(api, topo)
    try:
        before = {s["node"]: s for s in api.get("/switches").json()}
        processes.stop("controller", sig=9)
        time.sleep(1.0)
        # fail_mode=secure: installed flows keep forwarding, and nothing new opens
        assert tcp.alive and connects(c1, ALLOWED) and not connects(c1, DENIED)
        lifecycle.start_services(topo)  # the controller comes back; the rest is up

        def resynced() -> dict[str, Any] | None:
            now = {s["node"]: s for s in api.get("/switches").json()}
            fresh = all(s["in_sync"] and s["synced_generation"] >
                        before[n]["synced_generation"] for n, s in now.items())
            return now if fresh else None

        after = wait_for(resynced, 30, "the new controller to sync every switch")
        for node, st in after.items():
            assert st["in_sync"] and st["users"] == before[node]["users"], (node, st)
            # the new controller found every flow it wanted already there: nothing changed
            assert st["last_sync"]["added"] == st["last_sync"]["deleted"] == 0, (node, st)
        time.sleep(0.5)
        assert tcp.alive, tcp.error
        assert connects(c1, ALLOWED) and not connects(c1, DENIED)
    finally:
        tcp.stop()
