"""The VPN NF on the real data plane: the user's traffic crosses an IPsec tunnel (ESP in UDP
on the underlay, never the plaintext) to the VPN gateway host and leaves there; its
state (the config) moves to a new instance and the tunnel is negotiated again. Then
`netfate scenario vpn`, CI-sized. Outcomes only (timings are reported, not asserted)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate import catalogue
from netfate.drivers import node_files
from netfate.drivers import vm_guest as vm_guest_mod
from netfate.drivers.vm import VmCompute
from netfate.drivers.vm_qmp import GuestAgent
from netfate.errors import ConfigRefused, InvalidInput, http_status
from netfate.interfaces import NFInfo
from netfate.proc import netns_argv
from netfate.scenarios import vpn, vpn_vm
from netfate.scenarios import vpn_measure as m
from netfate.scenarios.vpn_gateway import Gateway, swan
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed

INET = "10.255.0.1"


@pytest.fixture(scope="module")
def gateway(testbed_up: None) -> Iterator[dict[str, Any]]:
    """The VPN gateway behind the internet host, for the NF's config; removed after."""
    psk_file, psk = vpn._psk_file("user1")
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
    # From an address outside local_ts: not bridged out in the clear (fail closed; before,
    # it crossed the NF unencrypted: probe of 2026-12-06).
    other = "10.90.3.7"
    subprocess.run(netns_argv(vpn.CLIENT_NS, ["ip", "addr", "add", f"{other}/16", "dev",
                                              "eth0"]), check=True)
    try:
        cp = subprocess.run(netns_argv(vpn.CLIENT_NS, ["ping", "-c", "3", "-i", "0.2", "-W",
                                                       "1", "-I", other, INET]),
                            capture_output=True, check=False)
        assert cp.returncode != 0, cp.stdout
        st = node.compute.status(new.instance_id).detail
        assert st["clear_dropped"]["packets"] >= 3, st
    finally:
        subprocess.run(netns_argv(vpn.CLIENT_NS, ["ip", "addr", "del", f"{other}/16", "dev",
                                                  "eth0"]), check=False)
    tb.remove_nf("cpe1", new.instance_id)


@pytest.fixture(scope="module")
def vm_guest() -> str:
    """The VM guest built before a testbed is attached (a node hosts the vm flavour only if
    it is there then); "" or why VMs can't run here."""
    return vpn_vm.prepare()


def _charon_confined(tb: Testbed, flavour: str, info: NFInfo, key_file: str) -> None:
    """charon runs inside the flavour's confinement, and has the node's key file there:
    a container's PID namespace (the key bound from the node); a VM's guest (a copy, mode
    0400), with no charon of the NF's on the host."""
    drv = tb.node("cpe1").driver(flavour)
    if flavour == "container":
        charons = [p for p in m.pids_in(info.netns or "")
                   if b"charon-systemd" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert charons, "no charon in the NF's namespace"
        host_pidns = os.readlink("/proc/self/ns/pid")
        assert all(os.readlink(f"/proc/{p}/ns/pid") != host_pidns for p in charons)
        return
    assert isinstance(drv, VmCompute)
    ga = GuestAgent(drv.records.dir(info.instance_id) / "qga.sock", timeout=30)
    try:
        ga.sync(30)
        rc, out, err = ga.run(["/bin/sh", "-c", 'pidof charon-systemd && stat -c %a "$0" && '
                               'cat "$0"', key_file], {"PATH": vm_guest_mod.PATH}, 20)
    finally:
        ga.close()
    assert rc == 0, err
    pid, mode, key = out.split("\n")[:3]
    assert pid.strip() and mode == "400", out
    assert key == Path(key_file).read_text().splitlines()[0]


@pytest.mark.parametrize("flavour", ["container", "vm"])
def test_the_confined_vpn_tunnels_the_users_traffic_and_its_state_moves_to_native(
        tb: Testbed, gateway: dict[str, Any], flavour: str, vm_guest: str) -> None:
    """The same NF as a container (runc, its OCI image holding strongSwan: charon gets
    /dev/net/tun (kernel:tun) and the node's key file bound read-only (node-files), nothing
    else of the host) and as a VM (QEMU/TCG, the guest carrying strongSwan, the key file
    copied in): the tunnel comes up, the user's traffic crosses it encrypted, and its state
    imports into a native instance whose tunnel comes up too."""
    if flavour == "vm" and vm_guest:
        pytest.skip(vm_guest)
    sha = catalogue.install(tb.store, "vpn").sha256
    node = tb.node("cpe1")
    if flavour not in node.computes:
        pytest.skip(f"cpe1 hosts no {flavour} flavour")
    info = node.deploy_nf("user1", f"vpn-{flavour[0]}", sha, gateway, flavour=flavour)
    drv = node.driver(flavour)
    try:
        assert info.flavour == flavour, info
        tb.steer("client1", [info], tag="user:user1")
        assert vpn.wait_ping(vpn.CLIENT_NS, INET, 30) is not None, \
            f"no traffic through the {flavour}'s tunnel"
        enc, clear = vpn._on_the_wire(tb, INET)
        assert enc > 0 and clear == 0, (enc, clear)
        st = drv.status(info.instance_id).detail
        if flavour == "container":
            assert st["container_status"] == "running" and "dead" not in st, (st.get("dead"), st)
        else:
            assert st["vm"] == "running", st
        assert st["ike_established"] and st["child_installed"], st
        assert st["tunnel_out"]["packets"] > 0 and st["tunnel_in"]["packets"] > 0, st
        _charon_confined(tb, flavour, info, gateway["psk_file"])
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


def test_a_vm_vpn_whose_key_file_is_missing_or_too_big_is_refused_and_leaves_nothing(
        tb: Testbed, gateway: dict[str, Any], vm_guest: str) -> None:
    """The VM driver copies the node's key file into the guest: one that is missing, too big
    or outside /run and /tmp is refused before a VM is made, with the reason."""
    if vm_guest:
        pytest.skip(vm_guest)
    sha = catalogue.install(tb.store, "vpn").sha256
    node = tb.node("cpe1")
    if "vm" not in node.computes:
        pytest.skip("cpe1 hosts no vm flavour")
    big = Path(gateway["psk_file"]).with_name("psk-big")
    big.write_bytes(b"k" * (node_files.MAX_BYTES + 1))
    big.chmod(0o600)
    try:
        for path, why in ((f"{gateway['psk_file']}-gone", "not a file"),
                          (str(big), "at most"), ("/etc/hostname", "may name only files in"),
                          (f"{node_files.owner_dir('user2')}/psk", "may name only files in")):
            with pytest.raises(InvalidInput, match=why):
                node.deploy_nf("user1", "vpn-bad", sha, {**gateway, "psk_file": path},
                               flavour="vm")
        drv = node.driver("vm")
        assert isinstance(drv, VmCompute)
        assert drv.list_nfs() == [] and not list(drv.vms_dir.glob("*"))
    finally:
        big.unlink()


def test_scenario_vpn_ci_sized(scenario_testbed: None) -> None:
    opts = vpn.Options(suites=("aes128gcm16",), runs=1, seconds=1, roam=True)
    lines: list[str] = []
    res = vpn.run(opts, lambda t, msg: lines.append(msg))
    assert res.ok, (res.checks, res.figures, lines)
    rows = {r["flavour"]: r for r in res.figures["table"]}
    assert "native" in res.figures["flavours"]
    assert set(rows) == {"bare", *res.figures["flavours"]}
    for f in ("container", "vm"):  # each one measured, or said why not
        assert f in rows or f in res.figures["not_measured"], res.figures["not_measured"]
    for r in res.figures["table"]:
        assert r["image_mb"] > 0 and r.get("ram_mb", 0) > 0, r
    assert rows["native"]["uncapped"]["mean_mbit_s"] > 0
    assert rows["native"]["underlay"]["plaintext_packets"] == 0
    assert res.figures["roaming"]["tcp_survived"] is True
    assert lifecycle.status()["up"] is False  # not kept


def test_a_native_vpn_whose_key_file_is_missing_is_the_configurations_fault(
        tb: Testbed, gateway: dict[str, Any]) -> None:
    """The native VPN's create finds no key file at psk_file: the NF exits EX_CONFIG and the
    node refuses with ConfigRefused (422: the user's configuration, not a failure of the
    node), naming the file, and leaves nothing (probe of 2026-12-06)."""
    sha = catalogue.install(tb.store, "vpn").sha256
    node = tb.node("cpe1")
    gone = f"{gateway['psk_file']}-gone"
    with pytest.raises(ConfigRefused, match=f"refused its configuration.*psk_file {gone}") \
            as e:
        node.deploy_nf("user1", "vpn-nokey", sha, {**gateway, "psk_file": gone},
                       flavour="native")
    assert http_status(e.value) == 422
    assert all("vpn-nokey" not in i.instance_id for i in node.driver("native").list_nfs())
    assert not [n for n in os.listdir("/run/netns") if "nokey" in n]
