"""The native compute driver's checks of its inputs and the node's network abstraction on the
real data plane. The compute contract every flavour keeps (lifecycle, rollback, crash, traffic,
state) is test_compute_contract.py."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from netfate.bundle import build_bundle
from netfate.drivers import cgroups, netns, netns_release
from netfate.errors import Conflict, InvalidInput, MissingCapability, NotFound
from netfate.proc import netns_argv
from netfate.testbed.context import Testbed

from .conftest import ours_left


def custom_bundle(tb: Testbed, tmp: Path, scripts: dict[str, str], **desc: object) -> str:
    d = tmp / "b"
    (d / "scripts").mkdir(parents=True)
    descriptor = {"name": "probe", "version": "1", "ports": [{"name": "lan"}, {"name": "wan"}],
                  "resources": {"memory-mb": 64, "cpu-percent": 20}, **desc}
    (d / "descriptor.yaml").write_text(yaml.safe_dump(descriptor))
    for name in ("start", "stop"):
        scripts.setdefault(name, "true")
    for name, body in scripts.items():
        (d / "scripts" / name).write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    return tb.store.add(build_bundle(d)).sha256


def snapshot() -> dict[str, object]:
    return {**ours_left(), "cgroups": cgroups.list_ours()}


def test_name_in_use_capability_and_bad_inputs(tb: Testbed, tmp_path: Path, fw_sha: str) -> None:
    node = tb.node("cpe1")
    node.deploy_nf("carol", "firewall", fw_sha, {})
    with pytest.raises(Conflict, match="already in use"):
        node.compute.create_nf("cpe1", "carol", "firewall", fw_sha, {"default_out": "deny"})
    # Owner and NF names join with '-': carol's "x-fw" would be carol-x's "fw". Refused
    # saying so, never handed carol-x's NF as carol's (same package and config).
    node.deploy_nf("carol-x", "fw", fw_sha, {})
    with pytest.raises(Conflict, match=r"already carol-x's NF 'fw'.*another name"):
        node.compute.create_nf("cpe1", "carol", "x-fw", fw_sha, {})
    node.compute.delete_nf("cpe1-carol-x-fw")
    before = snapshot()
    sha = custom_bundle(tb, tmp_path, {}, dependencies={
        "capability": [{"name": "warp-drive", "type": "hardware"}]})
    with pytest.raises(MissingCapability, match="warp-drive"):
        node.deploy_nf("carol", "probe", sha, {})
    with pytest.raises(InvalidInput, match="config"):
        node.deploy_nf("dave", "firewall", fw_sha, {"default_out": "maybe"})
    with pytest.raises(InvalidInput, match="owner"):
        node.deploy_nf("Bad Owner!", "firewall", fw_sha, {})
    with pytest.raises(NotFound, match="bundle"):
        node.deploy_nf("dave", "firewall", "f" * 64, {})
    with pytest.raises(NotFound):
        node.compute.start_nf("cpe1-nobody-firewall")
    assert snapshot() == before


def test_port_on_missing_lsi_is_refused(tb: Testbed) -> None:
    with pytest.raises(NotFound, match="LSI"):
        tb.network.create_port("fate-ghost", "fate-x1")
    assert "fate-ghost" not in tb.network.list_lsis()


def test_lsi_and_ts_rules_are_idempotent(tb: Testbed) -> None:
    from netfate.controller.model import Match, TSRule
    from netfate.controller.ts_rules import priority_of

    net = tb.network
    net.create_lsi("fate-lsi1")
    try:
        net.create_lsi("fate-lsi1")
        a = net.create_port("fate-lsi1", "fate-l1a", peer="fate-l1b")
        b = net.create_port("fate-lsi1", "fate-l1b", peer="fate-l1a")
        assert a != b
        rule = TSRule(rule_id="t1", priority=10, match=Match(in_port="fate-l1a"),
                      output=("fate-l1b",))
        net.create_ts_rule("fate-lsi1", rule)
        net.create_ts_rule("fate-lsi1", rule)
        prio = priority_of(rule)  # table 0's TS rule band
        assert len([f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]) == 1
        moved = TSRule(rule_id="t1", priority=10,
                       match=Match(in_port="fate-l1a", ip_proto=6, tp_dst=80),
                       output=("fate-l1b",))
        net.create_ts_rule("fate-lsi1", moved)  # the old match is replaced, not kept
        flows = [f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]
        assert len(flows) == 1 and flows[0]["match"].get("tcp_dst") == 80
        net.delete_ts_rule("fate-lsi1", "t1")
        net.delete_ts_rule("fate-lsi1", "t1")
        assert not [f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]
        with pytest.raises(NotFound, match="port"):
            net.create_ts_rule("fate-lsi1", TSRule(rule_id="t2", match=Match(in_port="nope"),
                                                   output=("fate-l1b",)))
        net.delete_port("fate-lsi1", "fate-l1a")
        net.delete_port("fate-lsi1", "fate-l1a")
    finally:
        net.delete_lsi("fate-lsi1")
        net.delete_lsi("fate-lsi1")
    assert "fate-lsi1" not in net.list_lsis()


def test_port_watch_fires_on_a_station_and_stops_when_asked(tb: Testbed) -> None:
    """watch_ports tells of a port created with attached-mac (how a station's association
    shows) well before the agent's 50 ms poll would, and not after its stop is called."""
    net = tb.network
    seen = threading.Event()
    net.create_lsi("fate-lsi2")
    try:
        stop = net.watch_ports(seen.set)
        seen.clear()
        t0 = time.monotonic()
        net.create_ports("fate-lsi2", [("fate-l2a", "fate-l2b")], external_ids={
            "fate-l2a": {"netfate-kind": "access", "attached-mac": "02:00:00:00:00:01"}})
        assert seen.wait(2), "no port change was told"
        assert net.port_ids("fate-lsi2")["fate-l2a"]["attached-mac"] == "02:00:00:00:00:01"
        assert time.monotonic() - t0 < 1
        stop()
        seen.clear()
        net.delete_ports("fate-lsi2", ["fate-l2a"])
        assert not seen.wait(0.3), "a stopped watch was still called"
    finally:
        net.delete_lsi("fate-lsi2")
    assert "fate-lsi2" not in net.list_lsis()


def _tx(ifname: str) -> int | None:
    """Frames the switch sent into the NF through its host-side end (None: gone)."""
    try:
        return int((Path("/sys/class/net") / ifname / "statistics" / "tx_packets").read_text())
    except OSError:
        return None


def test_removing_an_nf_that_keeps_broadcasting_makes_no_l2_loop(
        tb: Testbed, fw_sha: str) -> None:
    """A bump-in-the-wire NF bridges its ports, which share the isolated VLAN. Had a frame
    from one reached the switch's L2 learning (NORMAL), NORMAL would flood it into the
    other, and it would circle NF and switch for ever (one ARP with the drop rules taken
    away: ~6000 frames a second), and from there into the tunnels of every node: the storm
    that held ovs-vswitchd's main thread for tens of seconds in CI (2026-12-02). Here the NF
    broadcasts ARP every millisecond while it is removed: the switch sends it nothing
    unasked, and the removal ends in time. (That the drop rules outlive the ports is
    tests/unit/test_node_flavours.py.)"""
    node = tb.node("cpe1")
    info = node.deploy_nf("loopy", "firewall", fw_sha, {})
    assert info.netns is not None
    hosts = [p.host_if for p in info.ports]
    base = {h: _tx(h) or 0 for h in hosts}
    arp = bytes.fromhex(  # who-has 10.90.9.9 tell 10.90.9.8, broadcast
        "ffffffffffff" "020000000a01" "0806" "0001080006040001" "020000000a01" "0a5a0908"
        "000000000000" "0a5a0909")
    stop = threading.Event()
    worst = 0

    def broadcast() -> None:
        with netns.socket_in(info.netns, socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((info.ports[0].name, 0))
            while not stop.is_set():
                with contextlib.suppress(OSError):  # the link goes with the NF
                    s.send(arp)
                time.sleep(0.001)

    def watch() -> None:
        nonlocal worst
        while not stop.is_set():
            for h in hosts:
                n = _tx(h)
                if n is not None:
                    worst = max(worst, n - base[h])
            time.sleep(0.002)

    threads = [threading.Thread(target=broadcast), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        start = time.monotonic()
        node.remove_nf(info.instance_id)
        took = time.monotonic() - start
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert worst < 20, f"the switch sent {worst} frames into the NF: an L2 loop"
    assert took < 10, f"removing the NF took {took:.1f} s"


def test_nothing_from_a_tunnel_reaches_l2_flooding(tb: Testbed) -> None:
    """The overlay's full mesh of tunnels and the tree of infrastructure links together would
    loop a flooded frame between nodes: on the service-less testbed, what a tunnel brings and
    no steering rule takes is dropped (the `base:tunnel:` rules)."""
    from netfate.drivers.ovs import unixctl

    checked = 0
    for name in tb.node_names:
        lsi = tb.node(name).lsi
        for port, ids in tb.network.port_ids(lsi).items():
            if ids.get("netfate-kind") != "tunnel":
                continue
            trace = unixctl(tb.server, "ofproto/trace", lsi,
                            f"in_port={port},dl_dst=ff:ff:ff:ff:ff:ff,arp")
            assert "Datapath actions: drop" in trace, trace[-600:]
            checked += 1
    assert checked >= 2


def test_a_deleted_nf_is_made_again_at_once_and_its_ports_go_with_its_namespace(
        tb: Testbed, fw_sha: str) -> None:
    """delete_nf releases the namespace without waiting for the kernel (netns_release): the
    NF's outer ends go in the kernel's cleanup some milliseconds later. The same NF made
    again at once takes the same port names (it waits for the old ones), and works."""
    node = tb.node("cpe1")
    info = node.deploy_nf("erin", "firewall", fw_sha, {})
    hosts = [p.host_if for p in info.ports]
    first = netns.indexes(None, hosts)
    assert set(first) == set(hosts)
    node.remove_nf(info.instance_id)
    again = node.deploy_nf("erin", "firewall", fw_sha, {})
    assert [p.host_if for p in again.ports] == hosts
    now = netns.indexes(None, hosts)
    assert set(now) == set(hosts) and set(now.values()).isdisjoint(first.values())
    assert again.netns and netns.indexes(again.netns, ["br0", "lan", "wan"]).keys() == {
        "br0", "lan", "wan"}
    node.remove_nf(again.instance_id)
    assert netns_release.wait_released(10) == []
    assert netns.indexes(None, hosts) == {}


def test_ports_of_a_namespace_something_keeps_alive_are_deleted(
        tb: Testbed, fw_sha: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process outside the NF's cgroup inside its namespace keeps the namespace, and its
    veths, alive after the release: the ports are deleted once the kernel has removed
    nothing for the linger."""
    monkeypatch.setattr(netns_release._watch, "linger", 0.5)
    node = tb.node("cpe1")
    info = node.deploy_nf("fred", "firewall", fw_sha, {})
    assert info.netns
    hosts = [p.host_if for p in info.ports]
    holder = subprocess.Popen(netns_argv(info.netns, ["sleep", "60"]))
    try:
        time.sleep(0.2)  # inside the namespace
        node.remove_nf(info.instance_id)
        assert netns_release.wait_released(10) == []
        assert netns.indexes(None, hosts) == {}
    finally:
        holder.kill()
        holder.wait()
