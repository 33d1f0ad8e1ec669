"""Chains across CPE, PE and DC on the real data plane (issue 11): VXLAN tunnels between the
nodes' LSIs over the infrastructure links, the user's traffic through NFs on other nodes and
back, both ways. One stack for the module: cpe1 has room for a firewall but not an inspector,
cpe2 and the PE have room for nothing, the DC for everything."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate import paths
from netfate.controller import pipeline as pl
from netfate.drivers.ovs import OvsServer
from netfate.proc import netns_argv
from netfate.roaming.probes import TcpStream
from netfate.roaming.session import running_at, wait_for
from netfate.testbed.move import _inside, move
from netfate.testbed.topology import Topology, load_topology, two_cpes_yaml

from .conftest import tcp_connect
from .helpers import ALLOWED, DENIED, INET, topology_file
from .test_roaming import IDLE_S, _stack, connects, login

TOPOLOGY = two_cpes_yaml("netfate-overlay-test", ("dc",), cpe1_mem_mb=40)


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return topology_file(tmp_path_factory, "overlay", TOPOLOGY)


@pytest.fixture(scope="module")
def stack(topo: Topology) -> Iterator[httpx.Client]:
    yield from _stack(topo)


def owned_flows(bridge: str, user: str) -> list[str]:
    """Every flow the controller installed for this user, of any kind (cookie's owner)."""
    mark = pl.cookie(pl.Kind.USER, user) & ((1 << 48) - 1)
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OVS_RUNDIR": str(paths.ovs_dir())}).stdout
    return [line for line in out.splitlines() if "cookie=0x" in line
            and int(line.split("cookie=")[1].split(",")[0], 16) & ((1 << 48) - 1) == mark]


def tunnel_flows(bridge: str, user: str) -> list[str]:
    return [f for f in owned_flows(bridge, user) if "tun_id" in f]


def ns_inode(instance: str) -> int:
    return os.stat(f"/run/netns/fate-{instance}").st_ino


def echo(ns: str, port: int) -> bool:
    s = tcp_connect(ns, INET, port, timeout=2)
    if s is None:
        return False
    try:
        s.sendall(b"x" * 20000)
        got = b""
        while len(got) < 20000:
            chunk = s.recv(65536)
            if not chunk:
                return False
            got += chunk
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(ns: str, port: int = 8080) -> int | None:
    """An HTTP GET from `ns` to a web server started for it on the internet host."""
    server = subprocess.Popen(
        netns_argv("fate-h-inet", ["python3", "-m", "http.server", str(port), "--bind", INET]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cp = subprocess.run(netns_argv(ns, ["curl", "-s", "-o", "/dev/null", "-w",
                                                "%{http_code}", "--max-time", "2",
                                                f"http://{INET}:{port}/"]),
                                capture_output=True, text=True, check=False)
            if cp.stdout.strip().isdigit() and cp.stdout.strip() != "000":
                return int(cp.stdout.strip())
            time.sleep(0.2)
        return None
    finally:
        server.kill()
        server.wait()


def test_a_user_whose_cpe_has_no_room_is_served_through_the_firewall_in_the_dc(
        stack: httpx.Client, topo: Topology) -> None:
    login(stack, topo, "client2", "user2")
    assert running_at(stack, "user2") == {"dc-user2-firewall": "dc"}
    c2 = topo.host("client2").netns
    assert echo(c2, ALLOWED), "20 kB echoed both ways through the DC's firewall"
    assert not connects(c2, DENIED), "the DC firewall's rule applies"
    # the stretch is hosted on the DC's switch, keyed by the tunnel (no address matched)
    assert tunnel_flows("fate-dc", "user2") and tunnel_flows("fate-cpe2", "user2")
    # the underlay's neighbours expire when idle: OVS learns them again by ARP
    server = OvsServer(paths.ovs_dir())
    subprocess.run(["ovs-appctl", "-t", str(server.rundir / "ovs-vswitchd.ctl"),
                    "tnl/neigh/flush"], env={**os.environ, **server.env}, check=True)
    wait_for(lambda: echo(c2, ALLOWED), 10, "the tunnel after its neighbours were flushed")


def test_roaming_with_a_dc_nf_keeps_tcp_and_does_not_recreate_it(
        stack: httpx.Client, topo: Topology) -> None:
    c2 = topo.host("client2").netns
    before = ns_inode("dc-user2-firewall")
    tcp = TcpStream(c2, INET, ALLOWED).start()
    try:
        time.sleep(0.5)
        move("client2", "cpe1")
        wait_for(lambda: tunnel_flows("fate-cpe1", "user2"), 30, "user2 steered at cpe1")
        wait_for(lambda: not owned_flows("fate-cpe2", "user2"), 30, "cpe2 to forget user2")
        time.sleep(1.0)
        assert tcp.alive, tcp.error
        assert running_at(stack, "user2") == {"dc-user2-firewall": "dc"}
        assert ns_inode("dc-user2-firewall") == before, "the DC's firewall was not re-created"
        assert not any(o["operation"] in ("MIGRATE", "INSTANTIATE")
                       and o.get("vnf_instance_id") != "dc-user2-firewall"
                       for o in stack.get("/vnf_lcm_op_occs").json()
                       if "user2" in str(o.get("vnf_instance_id")))
        assert connects(c2, ALLOWED) and not connects(c2, DENIED)
    finally:
        tcp.stop()


def test_idle_release_removes_the_dc_nf_and_its_tunnel_flows(
        stack: httpx.Client, topo: Topology) -> None:
    wait_for(lambda: not running_at(stack, "user2"), IDLE_S + 30, "user2's idle release")
    wait_for(lambda: not any(n.startswith("fate-dc-user2-")
                             for n in os.listdir("/run/netns")), 15, "the DC NF to go")
    wait_for(lambda: not tunnel_flows("fate-dc", "user2")
             and not tunnel_flows("fate-cpe1", "user2"), 15, "user2's tunnel flows to go")


def test_split_chain_cpe_firewall_then_dc_inspector(stack: httpx.Client,
                                                    topo: Topology) -> None:
    r = stack.post("/users", json={
        "name": "user1", "password": "user1-secret",
        "required_nfs": ["firewall", "packet-inspector"],
        "nf_config": {"firewall": {"rules": [{"action": "deny", "proto": "tcp",
                                              "dport": DENIED}]},
                      "packet-inspector": {"scan_ports": 10, "window_s": 5}}})
    assert r.status_code == 201, r.text
    from netfate.roaming.session import portal_login

    portal_login(topo, "client1", "user1", "user1-secret")
    want = {"cpe1-user1-firewall": "cpe1", "dc-user1-packet-inspector": "dc"}
    wait_for(lambda: running_at(stack, "user1") == want, 40, "the split chain")
    c1 = topo.host("client1").netns
    wait_for(lambda: connects(c1, ALLOWED), 15, "user1 steered through both")
    assert echo(c1, ALLOWED)
    assert not connects(c1, DENIED), "the CPE's firewall is on the path"
    assert http_get(c1) == 200, "HTTP crosses the CPE's firewall and the DC's inspector"
    assert tunnel_flows("fate-dc", "user1") and tunnel_flows("fate-cpe1", "user1")
    # the inspector in the DC sees the user's traffic (a port scan) and names the user
    for port in range(21000, 21030):
        s = tcp_connect(c1, INET, port, timeout=0.05)
        if s:
            s.close()

    def note() -> dict[str, Any] | None:
        notes = stack.get("/notifications", params={
            "nf_instance_id": "dc-user1-packet-inspector"}).json()
        return next((n for n in notes if n.get("type") == "port-scan"), None)

    n = wait_for(note, 20, "the inspector's notification", step=0.3)
    assert n["owner"] == "user1" and n["node"] == "dc", n
    assert n["source"] == _inside(c1)[0][0].split("/")[0], n  # the user's own address


def test_three_tiers_serve_users_under_both_pes_with_a_firewall_on_the_pe(
        stack: httpx.Client, tmp_path: Path) -> None:
    """The three-tier topology file (CPEs under two PEs under a DC): a user at cpe1 (under
    pe1) with their firewall on their CPE, a user at cpe3 (under pe2), whose CPE has no room,
    with theirs on pe2, the PE above it; both reach the internet host behind the DC. Runs
    last: it replaces the module's stack with its own."""
    from importlib import resources

    text = resources.files("netfate.testbed").joinpath("three-tier.yaml").read_text()
    text = text.replace("{name: cpe3, role: cpe, uplink: pe2}",
                        "{name: cpe3, role: cpe, uplink: pe2, mem_mb: 8}")
    f = tmp_path / "three-tier.yaml"
    f.write_text(text)
    topo3 = load_topology(f)
    gen = _stack(topo3)
    api = next(gen)
    try:
        login(api, topo3, "client1", "user1")
        assert running_at(api, "user1") == {"cpe1-user1-firewall": "cpe1"}
        login(api, topo3, "client3", "user3")
        assert running_at(api, "user3") == {"pe2-user3-firewall": "pe2"}
        for host in ("client1", "client3"):
            ns = topo3.host(host).netns
            assert echo(ns, ALLOWED) and not connects(ns, DENIED), host
    finally:
        gen.close()
