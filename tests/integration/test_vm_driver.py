"""The VM compute driver on the real data plane: QEMU (TCG) guests whose tap ports sit on the
testbed's OVS LSIs, the firewall's own scripts run in the guest through qemu-guest-agent.
Guests start from the guest template (netfate.drivers.vm_template; the first one boots it),
and the tests share guests where they can."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import paths
from netfate.agent import live_migration
from netfate.drivers import vm_image, vm_qemu
from netfate.drivers.vm import VmCompute
from netfate.errors import DriverError
from netfate.interfaces import NFState
from netfate.testbed.context import Testbed

from .conftest import Server, echo_ok, ours_left, tcp_connect
from .test_native_driver import custom_bundle

INET = "10.255.0.1"


@pytest.fixture(scope="module")
def guest() -> Iterator[vm_image.GuestImage]:
    """The guest image, built once (idempotent: a no-op when it is there)."""
    if not Path(vm_qemu.QEMU).is_file():
        pytest.skip("qemu-system-x86 is not installed (scripts/bootstrap.sh)")
    yield vm_image.build()


def qemus() -> list[int]:
    """PIDs of QEMUs running a guest of this testbed's run directory."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (p / "cmdline").read_bytes().split(b"\0")
                if cmd[0].endswith(b"qemu-system-x86_64") and \
                        any(str(paths.run_dir()).encode() in a for a in cmd):
                    out.append(int(p.name))
    return out


def vm(tb: Testbed, node: str) -> VmCompute:
    d = tb.node(node).driver("vm")
    assert isinstance(d, VmCompute)
    return d


def test_vm_firewall_filters_pauses_reports_a_crash_and_leaves_nothing(
    tb: Testbed, guest: vm_image.GuestImage, fw_sha: str, servers: list[Server],
) -> None:
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    before = ours_left()
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    cfg = {"rules": [{"action": "allow", "proto": "tcp", "dport": 5201},
                     {"action": "deny", "proto": "tcp", "dport": 2323}]}
    info = node.deploy_nf("user1", "firewall", fw_sha, cfg, flavour="vm")
    drv = vm(tb, node_name)
    assert info.flavour == "vm" and info.state == NFState.RUNNING
    assert drv.create_nf(node_name, "user1", "firewall", fw_sha, cfg).instance_id == \
        info.instance_id  # idempotent
    assert drv.start_nf(info.instance_id).state == NFState.RUNNING
    node.steer("user:user1", mac, access, uplink, [info])
    ok = tcp_connect("fate-h-client1", INET, 5201, timeout=5)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=1.0) is None
    st = drv.status(info.instance_id).detail
    assert st["vm"] == "running" and st["rules"][1]["packets"] > 0  # counted in the guest
    doc = drv.export_state(info.instance_id)
    assert doc["format"] == "netfate-state/1" and doc["config"]["rules"] == cfg["rules"]
    # pause freezes the guest: nothing is forwarded; start resumes it
    assert drv.pause_nf(info.instance_id).state == NFState.PAUSED
    assert drv.pause_nf(info.instance_id).state == NFState.PAUSED
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=1.0) is None
    assert drv.start_nf(info.instance_id).state == NFState.RUNNING
    ok = tcp_connect("fate-h-client1", INET, 5201, timeout=5)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert drv.stop_nf(info.instance_id).state == NFState.STOPPED
    assert drv.stop_nf(info.instance_id).state == NFState.STOPPED
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=1.0) is None
    # a crash of QEMU is reported: the NF shows stopped, and a notification is queued
    drv.start_nf(info.instance_id)
    rec = vm_qemu.running(drv._idir(info.instance_id))
    assert rec is not None
    os.kill(rec.pid, signal.SIGKILL)
    vm_qemu.wait_gone(drv._idir(info.instance_id), 5)
    [listed] = [i for i in drv.list_nfs() if i.instance_id == info.instance_id]
    assert listed.state == NFState.STOPPED and listed.detail["vm"] == "exited"
    assert any(n["type"] == "vm-exited" for n in drv.queue.drain())
    node.remove_nf(info.instance_id)
    node.remove_nf(info.instance_id)  # idempotent
    assert ours_left() == before
    assert qemus() == []
    assert not drv._idir(info.instance_id).exists()


def test_failed_vm_create_rolls_back_everything(
    tb: Testbed, guest: vm_image.GuestImage, tmp_path: Path,
) -> None:
    sha = custom_bundle(tb, tmp_path, {"create": "echo 'no such tool' >&2; exit 3"},
                        **{"flavours": ["vm"], "vnf-type": "vm"})
    before = ours_left()
    with pytest.raises(DriverError, match="no such tool"):
        tb.node("cpe1").deploy_nf("bob", "probe", sha, {}, flavour="vm")
    assert ours_left() == before
    assert qemus() == []
    assert vm(tb, "cpe1").list_nfs() == []


def test_live_migration_keeps_a_tcp_connection(
    tb: Testbed, guest: vm_image.GuestImage, fw_sha: str, servers: list[Server],
) -> None:
    """Make-before-break, in the orchestrator's order and through the agent's commands
    (netfate.agent.live_migration): the target NF is instantiated first (as the executor's
    Push does), then swapped for a QEMU waiting on -incoming; the guest moves with its rules
    and conntrack entries; steering switches after it resumes; then the source goes. The
    target node's taps join cpe1's LSI here (the user's access switch): the overlay between
    nodes is the orchestrator's part, not the driver's."""
    servers.append(Server("fate-h-inet", INET, 5201))
    node_name, mac, access, uplink = tb.access("client1")
    node, there = tb.node(node_name), tb.node("cpe2")
    dst = vm(tb, "cpe2")
    # default_out deny + allow 5201: the connection lives on only if conntrack moves with it
    cfg = {"default_out": "deny", "rules": [{"action": "allow", "proto": "tcp", "dport": 5201}]}
    old = node.deploy_nf("user1", "firewall", fw_sha, cfg, flavour="vm")
    node.steer("user:user1", mac, access, uplink, [old])
    conn = tcp_connect("fate-h-client1", INET, 5201, timeout=5)
    assert conn is not None and echo_ok(conn, b"before")
    new = dst.create_nf("cpe2", "user1", "firewall", fw_sha, cfg)  # the executor's Push
    try:
        dst.start_nf(new.instance_id)
        node.attach_ports(new)
        spec = live_migration.handle(node, "migrate_spec", old.instance_id, {})
        assert spec["live_migrate"] is True
        uri = live_migration.handle(there, "migrate_in", new.instance_id, spec)["uri"]
        assert uri.startswith("tcp:127.0.0.1:")
        assert dst.start_nf(new.instance_id).detail["incoming"] == uri  # waits, untouched
        figures = live_migration.handle(node, "migrate_out", old.instance_id, {"uri": uri})
        assert live_migration.handle(there, "migrate_finish", new.instance_id,
                                     {"state": "running"}) == {"state": "running"}
        moved = dst.info(new.instance_id)
        node.steer("user:user1", mac, access, uplink, [moved])  # same rule ids: replaced
        node.remove_nf(old.instance_id)
        print(f"live migration: {figures}")
        assert figures["downtime_ms"] is not None and figures["total_ms"] is not None
        conn.settimeout(5.0)
        assert echo_ok(conn, b"after-the-move")
        conn.close()
        # the moved guest enforces the same rules: a new connection to another port fails
        assert dst.status(new.instance_id).detail["vm"] == "running"
        assert tcp_connect("fate-h-client1", INET, 2323, timeout=1.0) is None
    finally:
        with contextlib.suppress(Exception):
            node.network.delete_ports(node.lsi, [p.host_if for p in new.ports])
        dst.delete_nf(new.instance_id)
    assert qemus() == []
