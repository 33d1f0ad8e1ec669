"""The VPN NF on the real data plane: the user's traffic crosses an IPsec tunnel (ESP in UDP
on the underlay, never the plaintext) to the VPN gateway host and leaves there; its
state (the config) moves to a new instance and the tunnel is negotiated again. Then
`netfate scenario vpn`, CI-sized. Outcomes only (timings are reported, not asserted)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate import catalogue
from netfate.scenarios import vpn
from netfate.scenarios import vpn_measure as m
from netfate.scenarios.vpn_gateway import Gateway, swan
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed

INET = "10.255.0.1"


@pytest.fixture(scope="module")
def gateway(testbed_up: None) -> Iterator[dict[str, Any]]:
    """The VPN gateway behind the internet host, for the NF's config; removed after."""
    psk_file, psk = vpn._psk_file()
    cfg = {"address": vpn.VPN_ADDR, "gateway": "10.90.0.1", "peer": Gateway.address,
           "local_ts": [vpn.USER_LAN], "psk_file": psk_file, "suite": "aes128-sha1"}
    gw = Gateway(vpn.INET_NS)
    try:
        gw.up(swan().normalise(cfg), psk)
        yield cfg
    finally:
        gw.down()


def test_traffic_crosses_the_tunnel_encrypted_and_the_state_moves(
        tb: Testbed, gateway: dict[str, Any]) -> None:
    sha = catalogue.install(tb.store, "vpn").sha256
    node = tb.node("cpe1")
    info = node.deploy_nf("user1", "vpn", sha, gateway)
    tb.steer("client1", [info], tag="user:user1")
    assert vpn.wait_ping(vpn.CLIENT_NS, INET, 15) is not None, "no traffic through the tunnel"
    enc, clear = vpn._on_the_wire(tb, INET)
    assert enc > 0, "no ESP-in-UDP on the underlay (the internet host's link)"
    assert clear == 0, "the user's packets crossed the underlay in the clear"
    st = node.compute.status(info.instance_id).detail
    assert st["ike_established"] and st["child_installed"], st
    assert st["tunnel_out"]["packets"] > 0 and st["tunnel_in"]["packets"] > 0, st
    # a new instance with the old one's state: same config, a new tunnel
    state = node.compute.export_state(info.instance_id)
    assert state["config"]["suite"] == "aes128-sha1" and "secret" not in str(state)
    tb.remove_nf("cpe1", info.instance_id)
    new = node.deploy_nf("user1", "vpn-new", sha, gateway)
    node.compute.import_state(new.instance_id, state)
    tb.steer("client1", [new], tag="user:user1")
    assert vpn.wait_ping(vpn.CLIENT_NS, INET, 15) is not None, "the tunnel did not come back"
    st = node.compute.status(new.instance_id).detail
    assert st["child_installed"] and st["clear_dropped"]["packets"] == 0, st
    tb.remove_nf("cpe1", new.instance_id)


def test_the_container_vpn_tunnels_the_users_traffic_and_its_state_moves_to_native(
        tb: Testbed, gateway: dict[str, Any]) -> None:
    """The same NF as a container (runc, its OCI image holding strongSwan): charon gets
    /dev/net/tun (kernel:tun) and the node's key file (node-files), nothing else of the
    host; the tunnel comes up, the user's traffic crosses it encrypted, and its state
    imports into a native instance whose tunnel comes up too."""
    from netfate.drivers.container import ContainerCompute

    sha = catalogue.install(tb.store, "vpn").sha256
    node = tb.node("cpe1")
    if "container" not in node.computes:
        pytest.skip("cpe1 hosts no container flavour (runc, umoci or cgroup v1 missing)")
    info = node.deploy_nf("user1", "vpn-c", sha, gateway, flavour="container")
    drv = node.driver("container")
    assert isinstance(drv, ContainerCompute)
    try:
        assert info.flavour == "container", info
        tb.steer("client1", [info], tag="user:user1")
        assert vpn.wait_ping(vpn.CLIENT_NS, INET, 15) is not None, \
            "no traffic through the container's tunnel"
        enc, clear = vpn._on_the_wire(tb, INET)
        assert enc > 0 and clear == 0, (enc, clear)
        st = drv.status(info.instance_id).detail
        assert st["container_status"] == "running" and "dead" not in st, (st.get("dead"), st)
        assert st["ike_established"] and st["child_installed"], st
        assert st["tunnel_out"]["packets"] > 0 and st["tunnel_in"]["packets"] > 0, st
        # charon runs inside the container (its PID namespace), not on the host's
        charons = [p for p in m.pids_in(info.netns or "")
                   if b"charon-systemd" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert charons, "no charon in the NF's namespace"
        host_pidns = os.readlink("/proc/self/ns/pid")
        assert all(os.readlink(f"/proc/{p}/ns/pid") != host_pidns for p in charons)
        state = drv.export_state(info.instance_id)
        assert state["config"]["suite"] == "aes128-sha1" and "secret" not in str(state)
    finally:
        tb.remove_nf("cpe1", info.instance_id)
    new = node.deploy_nf("user1", "vpn-n", sha, gateway, flavour="native")
    try:
        node.driver("native").import_state(new.instance_id, state)
        tb.steer("client1", [new], tag="user:user1")
        assert vpn.wait_ping(vpn.CLIENT_NS, INET, 15) is not None, "the tunnel did not come back"
    finally:
        tb.remove_nf("cpe1", new.instance_id)


def test_scenario_vpn_ci_sized(scenario_testbed: None) -> None:
    opts = vpn.Options(suites=("aes128gcm16",), runs=1, seconds=1, roam=True)
    lines: list[str] = []
    res = vpn.run(opts, lambda t, msg: lines.append(msg))
    assert res.ok, (res.checks, res.figures, lines)
    rows = {r["flavour"]: r for r in res.figures["table"]}
    assert set(rows) == {"native", "bare", *(["container"] if "container" in
                                              res.figures["flavours"] else [])}
    assert "vm" in res.figures["not_measured"]
    assert rows["native"]["uncapped"]["mean_mbit_s"] > 0
    assert rows["native"]["underlay"]["plaintext_packets"] == 0
    assert res.figures["roaming"]["tcp_survived"] is True
    assert lifecycle.status()["up"] is False  # not kept
