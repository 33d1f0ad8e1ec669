"""The orchestrator and real agents on the testbed: placement by the engine, the coordinator's
operations, and faults (an agent killed mid-instantiate, an orchestrator restart)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from netfate import paths
from netfate.api_auth import BearerAuth
from netfate.testbed import lifecycle, processes, readiness
from netfate.testbed.context import Testbed
from netfate.testbed.topology import load_topology

from .conftest import Server, echo_ok, tcp_connect

INET = "10.255.0.1"
API = lifecycle.api_url() + "/api/v1"
AUTH = BearerAuth()  # the operator token of whichever testbed is up


@pytest.fixture
def stack(testbed_up: None) -> Iterator[Testbed]:
    """The whole stack on the testbed (orchestrator with FreeRADIUS, controller, agents),
    with a fresh NFVI database. After it, the data-plane-only testbed the other tests use
    is put back (the controller owned the switches' flows)."""
    lifecycle.down()
    topo = load_topology()
    lifecycle.up(topo)
    tb = Testbed.attach()
    try:
        yield tb
    finally:
        tb.close()
        lifecycle.down()
        lifecycle.up(topo, services=False)


def user_flows(bridge: str, user: str) -> list[str]:
    """The flows the controller installed for this user (by the owner hash in the cookie)."""
    from netfate.controller import pipeline as pl

    mark = pl.cookie(pl.Kind.USER, user) & ((1 << 48) - 1)
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OVS_RUNDIR": str(paths.ovs_dir())}).stdout
    return [line for line in out.splitlines()
            if "cookie=0x" in line
            and int(line.split("cookie=")[1].split(",")[0], 16) & ((1 << 48) - 1) == mark]


def api(method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, API + path, timeout=30, auth=AUTH, **kw)
    assert r.status_code < 400, (r.status_code, r.text)
    return r.json() if r.content else None


def wait_ops(op_ids: list[str], timeout: float = 40) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        ops = [api("GET", f"/vnf_lcm_op_occs/{o}") for o in op_ids]
        if all(o["operation_state"] not in ("PROCESSING", "ROLLING_BACK") for o in ops):
            return ops
        assert time.monotonic() < deadline, f"operations stuck: {ops}"
        time.sleep(0.2)


def add_user(name: str, nfs: list[str], cfg: dict[str, Any] | None = None) -> None:
    api("POST", "/users", json={"name": name, "password": "pw-" + name, "required_nfs": nfs,
                                "nf_config": cfg or {}})


def login(tb: Testbed, user: str, host: str) -> dict[str, Any]:
    node, mac, _, _ = tb.access(host)
    h = tb.host(host)
    # the client has talked on its LAN, so its CPE's switch knows its port
    tcp_connect(h.netns, INET, 9, timeout=0.3)
    return api("POST", f"/users/{user}/associate",
               json={"node": node, "mac": mac, "ip": tb.topology.host_address(h)})  # type: ignore[no-any-return]


def node_nfs(tb: Testbed, node: str) -> set[str]:
    """Every NF on the node, of every flavour (the DC runs the firewall as a container)."""
    return {i.instance_id for i in tb.node(node).list_nfs()}


def db_nfs(node: str) -> set[str]:
    return {i["id"] for i in api("GET", "/vnf_instances", params={"node": node})
            if i["desired_state"] == "present"}


def test_login_places_firewall_filters_traffic_and_idle_releases(
    stack: Testbed, servers: list[Server]
) -> None:
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    nodes = {n["name"]: n for n in api("GET", "/nodes")}
    assert set(nodes) == {"core", "dc", "cpe1", "cpe2"} and all(n["online"] for n in
                                                                 nodes.values())
    assert "nftables" in nodes["cpe1"]["capabilities"]
    assert nodes["cpe1"]["infrastructure"]["switch"] == "openvswitch-netdev"
    add_user("user1", ["firewall"],
             {"firewall": {"rules": [{"action": "deny", "proto": "tcp", "dport": 2323}]}})
    out = login(stack, "user1", "client1")
    assert [i["kind"] for i in out["intents"]] == ["place", "steer"]
    [op] = wait_ops(out["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    inst = api("GET", "/vnf_instances/cpe1-user1-firewall")
    assert inst["actual_state"] == "running" and inst["node_name"] == "cpe1"
    assert node_nfs(stack, "cpe1") == {"cpe1-user1-firewall"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the steering is pushed right after the NF
        if tcp_connect("fate-h-client1", INET, 2323, timeout=0.5) is None:
            break
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    ok = tcp_connect("fate-h-client1", INET, 5201)
    assert ok is not None and echo_ok(ok)
    ok.close()
    [rule] = api("GET", "/steering_rules", params={"node": "cpe1"})
    assert rule["chain"] == ["cpe1-user1-firewall"] and rule["installed"] is True
    out = api("POST", "/users/user1/idle")
    assert {i["kind"] for i in out["intents"]} == {"release", "unsteer"}
    [op] = wait_ops(out["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED"
    assert node_nfs(stack, "cpe1") == set()
    # released: the switch holds no flows for user1, and the client is back behind the
    # captive portal (nothing but DHCP, DNS and the portal passes)
    assert user_flows("fate-cpe1", "user1") == []
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.5) is None


def test_agent_killed_during_instantiate_ends_completed_or_rolled_back(stack: Testbed) -> None:
    add_user("user2", ["firewall"])
    before = processes.recorded()["agent-cpe2"]
    out = login(stack, "user2", "client2")
    processes.stop("agent-cpe2", sig=signal.SIGKILL)
    assert not processes.alive("agent-cpe2")
    [op] = wait_ops(out["vnf_lcm_op_occs"], timeout=40)
    assert op["operation_state"] in ("COMPLETED", "ROLLED_BACK"), op
    # the agent comes back: it re-registers, cleans what the crash left, converges
    lifecycle.start_services(load_topology())
    assert processes.recorded()["agent-cpe2"] != before
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if node_nfs(stack, "cpe2") == db_nfs("cpe2"):
            break
        time.sleep(0.3)
    assert node_nfs(stack, "cpe2") == db_nfs("cpe2")
    leftovers = [n for n in lifecycle.status()["namespaces"] if n.startswith("fate-cpe2-")]
    assert leftovers == [f"fate-cpe2-{i.split('-', 1)[1]}" for i in sorted(db_nfs("cpe2"))]


def test_orchestrator_restart_resyncs_without_losing_or_duplicating(stack: Testbed) -> None:
    add_user("user3", ["firewall"])
    out = login(stack, "user3", "client1")
    [op] = wait_ops(out["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED"
    processes.stop("orchestrator", sig=signal.SIGKILL)
    time.sleep(1)
    assert node_nfs(stack, "cpe1") == {"cpe1-user3-firewall"}  # the data plane carries on
    lifecycle.start_services(load_topology())  # same state dir: same database
    readiness.wait_registered(["cpe1", "cpe2", "dc", "core"], lifecycle.api_url())
    time.sleep(2)
    assert db_nfs("cpe1") == {"cpe1-user3-firewall"}
    assert node_nfs(stack, "cpe1") == {"cpe1-user3-firewall"}
    assert api("GET", "/vnf_instances/cpe1-user3-firewall")["actual_state"] == "running"
    # and it still works: the user moves to cpe2, the firewall follows
    out = login(stack, "user3", "client2")
    kinds = [i["kind"] for i in out["intents"]]
    assert "migrate" in kinds, kinds
    ops = wait_ops(out["vnf_lcm_op_occs"])
    assert all(o["operation_state"] == "COMPLETED" for o in ops), ops
    assert node_nfs(stack, "cpe2") == {"cpe2-user3-firewall"}
    deadline = time.monotonic() + 10
    while node_nfs(stack, "cpe1") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node_nfs(stack, "cpe1") == set()


def test_an_operator_migration_stands_through_reconciliations(
        stack: Testbed, servers: list[Server]) -> None:
    """The operator moves a user's firewall to the DC: it stays there (pinned) through the
    reconciliations and re-evaluations that used to move it straight back to the user's
    CPE, and the user's traffic crosses it there."""
    servers.append(Server("fate-h-inet", INET, 5201))
    add_user("user5", ["firewall"])
    [op] = wait_ops(login(stack, "user5", "client1")["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    out = api("POST", "/vnf_instances/cpe1-user5-firewall/migrate", json={"node": "dc"})
    [op] = wait_ops(out["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    moved = api("GET", "/vnf_instances/dc-user5-firewall")
    assert moved["pinned"] is True and moved["node_name"] == "dc"
    deadline = time.monotonic() + 12  # two reconciliations (every 5 s) and their repairs
    while time.monotonic() < deadline:
        assert db_nfs("dc") == {"dc-user5-firewall"} and db_nfs("cpe1") == set()
        time.sleep(0.5)
    ops = [o for o in api("GET", "/vnf_lcm_op_occs")
           if o["operation"] == "MIGRATE" and "user5" in o["vnf_instance_id"]]
    assert len(ops) == 1, ops  # no move back
    assert node_nfs(stack, "dc") == {"dc-user5-firewall"}
    ok = tcp_connect("fate-h-client1", INET, 5201)
    assert ok is not None and echo_ok(ok)
    ok.close()


def test_notifications_from_an_nf_reach_the_api(stack: Testbed) -> None:
    add_user("user4", ["packet-inspector"],
             {"packet-inspector": {"scan_ports": 10, "window_s": 5}})
    out = login(stack, "user4", "client1")
    [op] = wait_ops(out["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    time.sleep(1)
    for port in range(21000, 21040):
        s = tcp_connect("fate-h-client1", INET, port, timeout=0.05)
        if s:
            s.close()
    deadline = time.monotonic() + 15
    notes: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not notes:
        notes = api("GET", "/notifications", params={"nf_instance_id":
                                                     "cpe1-user4-packet-inspector"})
        time.sleep(0.3)
    assert notes and notes[0]["type"] == "port-scan", json.dumps(notes)[:500]
    api("POST", f"/notifications/{notes[0]['id']}/ack")
    assert api("GET", "/notifications?acknowledged=true")[0]["id"] == notes[0]["id"]


def test_fallback_to_the_dc_when_the_cpe_lacks_resources(testbed_up: None, tmp_path: Any) -> None:
    """GNF's fallback: cpe2 declares 8 MB for NFs, the firewall needs 16 MB, and so does the
    PE above it (the policy's second tier, issue 11): it goes to the DC."""
    from importlib import resources

    text = resources.files("netfate.testbed").joinpath("default.yaml").read_text()
    text = text.replace("{name: cpe2, role: cpe, uplink: core}",
                        "{name: cpe2, role: cpe, uplink: core, mem_mb: 8}")
    text = text.replace("{name: core, role: pe}", "{name: core, role: pe, mem_mb: 8}")
    f = tmp_path / "small-cpe2.yaml"
    f.write_text(text)
    lifecycle.down()
    topo = load_topology(f)
    try:
        lifecycle.up(topo)
        with Testbed.attach() as tb:
            add_user("user5", ["firewall"])
            out = login(tb, "user5", "client2")
            place = [i for i in out["intents"] if i["kind"] == "place"]
            assert [p["node"] for p in place] == ["dc"], out
            [op] = wait_ops(out["vnf_lcm_op_occs"])
            assert op["operation_state"] == "COMPLETED", op
            assert node_nfs(tb, "dc") == {"dc-user5-firewall"}
            assert node_nfs(tb, "cpe2") == set()
    finally:
        lifecycle.down()


def test_nf_start_bench_on_a_testbed_with_the_controller(stack: Testbed) -> None:
    """`netfate testbed up` (orchestrator, controller, agents) then `netfate bench nf-start`:
    the bench's TS rules go into the orchestrator's switch state for cpe1, so the controller
    installs them next to its own flows and the probes cross each new firewall (issue 9)."""
    cp = subprocess.run(processes.netfate_argv("bench", "nf-start", "--runs", "3"),
                        capture_output=True, text=True, timeout=300, check=False)
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = json.loads(cp.stdout)
    assert out["nf_ms"]["n"] == 3 and out["bare_ms"]["n"] == 3
    # Nothing left behind: no TS rule at the node, no benchmark NF, and the agent kept them
    # (they were not its to collect) while the bench ran.
    assert api("GET", "/nodes/cpe1/ts_rules") == []
    assert not {i for i in node_nfs(stack, "cpe1") if "bench" in i}
    assert all(s["in_sync"] and not s["skipped"] for s in api("GET", "/switches"))


def test_troubleshoot_mirrors_the_users_traffic_and_blames_their_firewall(
    stack: Testbed, servers: list[Server]
) -> None:
    """Issue 13 through the orchestrator: POST /troubleshoot deploys the operator's probes,
    each on-path one gets copies of the user's traffic at its point (an OVS mirror of the
    user's access port at the CPE, of the links toward the CPE at the PE), and the report
    names the user's firewall, which denies the port: the CPE's probe saw the user's SYNs,
    the PE's none. Then the probes and their mirrors are gone."""
    servers.append(Server("fate-h-inet", INET, 2323))
    add_user("user1", ["firewall"],
             {"firewall": {"rules": [{"action": "deny", "proto": "tcp", "dport": 2323}]}})
    [op] = wait_ops(login(stack, "user1", "client1")["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the steering is pushed right after the NF
        if tcp_connect("fate-h-client1", INET, 2323, timeout=0.5) is None:
            break
    stop = threading.Event()

    def complain() -> None:  # the user's device keeps trying, as a user would
        while not stop.is_set():
            tcp_connect("fate-h-client1", INET, 2323, timeout=0.3)

    t = threading.Thread(target=complain)
    t.start()
    try:
        ts = api("POST", "/troubleshoot", json={"user": "user1", "destination": INET,
                                                "port": 2323, "seconds": 3,
                                                "timeout_s": 45})
        deadline = time.monotonic() + 90
        while (done := api("GET", f"/troubleshoot/{ts['id']}"))["operation_state"] == \
                "PROCESSING":
            assert time.monotonic() < deadline, done
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(5)
    assert done["operation_state"] == "COMPLETED", done
    rep = done["report"]
    points = {p["point"]: p for p in rep["points"]}
    assert points["cpe1"]["flow_packets"] > 0, (done["steps"], points["cpe1"]["results"])
    assert points["core"]["flow_packets"] == 0, points["core"]["results"]
    v = rep["verdict"]
    assert v["kind"] == "nf" and v["stops_at"] == "user1's firewall on cpe1", rep["summary"]
    assert done["left_behind"] == []
    # Each probe is a station with its own address, carried by TS rules for its MAC: its
    # pings reach the destination from every point (the path past the firewall works), the
    # CPE's reaches the user's device over their access link, and all of it is evidence.
    for node in ("cpe1", "core", "dc"):
        assert points[node]["ping_dest"] is True, (node, points[node]["results"], done["steps"])
    assert points["cpe1"]["ping_user"] is True, points["cpe1"]["results"]
    assert not any("no address" in x for x in rep["limits"]), rep["limits"]
    # The flow tables that name the user, and the link from their CPE up, both ends up.
    dump = rep["flows"]["cpe1"]
    assert dump["flows"] and 0 < dump["flows_matching"] < dump["flows_total"], dump
    assert [(e["node"], e["state"]) for e in rep["links"]] and \
        all("LINK_DOWN" not in e["state"] for e in rep["links"]), rep["links"]
    assert {e["node"] for e in rep["links"]} == {"cpe1", "core"}
    for node in ("cpe1", "core", "dc"):
        left = api("GET", f"/nodes/{node}/ts_rules")
        assert not [r for r in left if r["rule_id"].startswith("troubleshoot:")], left
    mirrors = subprocess.run(["ovs-vsctl", "--columns=name", "list", "Mirror"],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OVS_RUNDIR": str(paths.ovs_dir())}).stdout
    assert "netfate-ts-" not in mirrors


def test_a_node_marked_down_serves_its_users_on_and_a_deleted_user_leaves_the_switches(
    stack: Testbed, servers: list[Server]
) -> None:
    """(new-user probe, 2026-12-05) `nodes down cpe1` moved the firewall out but left cpe1
    steering into the old NF's port: the user was cut off. Now the firewall moves out with
    its state (the established connection goes on) and cpe1 steers to it. And a user
    deleted while located stayed in the switches' state until some later change."""
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 5202)]
    add_user("user1", ["firewall"])
    [op] = wait_ops(login(stack, "user1", "client1")["vnf_lcm_op_occs"])
    assert op["operation_state"] == "COMPLETED", op
    conn = None
    deadline = time.monotonic() + 10
    while conn is None and time.monotonic() < deadline:
        conn = tcp_connect("fate-h-client1", INET, 5201, timeout=0.5)
    assert conn is not None and echo_ok(conn)
    try:
        api("PATCH", "/nodes/cpe1", json={"admin_down": True})
        deadline = time.monotonic() + 30
        while True:
            moved = [i for i in api("GET", "/vnf_instances") if i["owner"] == "user1"
                     and i["desired_state"] == "present" and i["actual_state"] == "running"
                     and i["node_name"] != "cpe1"]
            if moved and "cpe1-user1-firewall" not in node_nfs(stack, "cpe1") and all(
                    s["in_sync"] and not s["skipped"] for s in api("GET", "/switches")):
                break
            assert time.monotonic() < deadline, api("GET", "/switches")
            time.sleep(0.3)
        assert echo_ok(conn, b"after the move"), "the established connection broke"
        again = tcp_connect("fate-h-client1", INET, 5202, timeout=2)  # (one at a time)
        assert again is not None and echo_ok(again)
        again.close()
    finally:
        conn.close()
        api("PATCH", "/nodes/cpe1", json={"admin_down": False})

    # A user without NFs, located at cpe2, deleted: gone from every switch at once.
    add_user("user2", [])
    login(stack, "user2", "client2")
    deadline = time.monotonic() + 10
    while not user_flows("fate-cpe2", "user2"):
        assert time.monotonic() < deadline, "user2 never steered at cpe2"
        time.sleep(0.2)
    api("DELETE", "/users/user2")
    # Published before the answer; the controller applies it within a round trip.
    deadline = time.monotonic() + 3
    while user_flows("fate-cpe2", "user2") or any(
            "user2" in json.dumps(s) for s in api("GET", "/switches")):
        assert time.monotonic() < deadline, api("GET", "/switches")
        time.sleep(0.1)
