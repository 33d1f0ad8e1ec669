"""The VM flavour's pure parts: the initramfs writer, QEMU's command line, port MACs, the
migration spec checks and the entry point. (The driver itself runs in
tests/integration/test_vm_driver.py: it needs root, QEMU and the testbed.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from netfate.bundle import BundleStore
from netfate.drivers import registry, vm_image, vm_migrate, vm_qemu
from netfate.drivers.vm import VmCompute
from netfate.drivers.vm_cpio import CpioWriter
from netfate.errors import DriverError, InvalidInput, NotFound
from netfate.interfaces import ComputeContext


def _parse(data: bytes) -> list[tuple[str, int, int, bytes]]:
    """(name, mode, mtime, data) per entry: a reader of the newc format for checking."""
    out, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        name = data[pos + 110:pos + 110 + f[11] - 1].decode()
        pos = (pos + 110 + f[11] + 3) & ~3
        body = data[pos:pos + f[6]]
        pos = (pos + f[6] + 3) & ~3
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0
            return out
        out.append((name, f[1], f[5], body))


def _archive() -> bytes:
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.directory("bin")
    w.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    w.file("lib/x.py", b"x = 1\n", mtime=1234)
    w.symlink("bin/sh", "busybox")
    w.trailer()
    return buf.getvalue()


def test_cpio_newc_entries_round_trip_and_are_reproducible() -> None:
    data = _archive()
    assert data == _archive()  # same entries, same bytes
    entries = {name: (mode, mtime, body) for name, mode, mtime, body in _parse(data)}
    assert entries["bin"][0] == 0o040755
    assert entries["bin/tool"] == (0o100755, 0, b"#!/bin/sh\necho hi\n")
    assert entries["lib/x.py"][1] == 1234  # a .pyc's source keeps its mtime
    assert entries["bin/sh"] == (0o120777, 0, b"busybox")


def test_qemu_command_line_is_tcg_with_taps_macs_mtu_and_channels(tmp_path: Path) -> None:
    img = vm_image.GuestImage("/k/vmlinuz", "/k/initrd", "6.1.0-57-amd64", "abc", 1, 2)
    ports = [("lan", "fate-p1", "52:54:00:00:00:01"), ("wan", "fate-p2", "52:54:00:00:00:02")]
    cmd = vm_qemu.argv(tmp_path, img, "fate-x", ports, 128, mtu=9000)
    text = " ".join(cmd)
    assert cmd[0] == vm_qemu.QEMU and "-incoming" not in cmd
    assert cmd[cmd.index("-accel") + 1].startswith("tcg")
    assert "netfate.port=lan,52:54:00:00:00:01 netfate.port=wan,52:54:00:00:00:02" in text
    assert "tap,id=n0,ifname=fate-p1,script=no,downscript=no,vnet_hdr=off" in text
    assert "mac=52:54:00:00:00:02" in text and "host_mtu=9000" in text
    assert "name=org.qemu.guest_agent.0" in text and f"unix:{tmp_path}/qmp.sock" in text
    incoming = vm_qemu.argv(tmp_path, img, "fate-x", ports, 128, mtu=9000,
                            incoming="tcp:127.0.0.1:4444")
    # a migration's target has the same devices, and waits
    assert incoming[:-2] == cmd and incoming[-2:] == ["-incoming", "tcp:127.0.0.1:4444"]


def test_port_macs_are_stable_local_and_distinct() -> None:
    a = vm_qemu.port_mac("cpe1-u-fw", "lan")
    assert a == vm_qemu.port_mac("cpe1-u-fw", "lan") and a.startswith("52:54:00:")
    assert a != vm_qemu.port_mac("cpe1-u-fw", "wan")


def test_no_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="netfate images build-vm"):
        vm_image.load(tmp_path)


def test_vm_is_registered_and_a_node_without_qemu_or_image_does_not_host_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    eps = {ep.name: ep.value for ep in registry._entry_points()}
    assert eps.get("vm") == "netfate.drivers.vm:VmCompute.from_context"
    ctx = ComputeContext("n1", tmp_path, BundleStore(tmp_path / "b"))
    monkeypatch.setattr(vm_qemu, "QEMU", str(tmp_path / "no-qemu"))
    with pytest.raises(DriverError, match="qemu"):
        VmCompute.from_context(ctx)
    assert "vm" not in registry.build_all(ctx, None)


def test_migration_spec_is_checked_before_anything_is_made(tmp_path: Path) -> None:
    drv = VmCompute("n1", tmp_path, BundleStore(tmp_path / "b"))
    with pytest.raises(InvalidInput, match="migration spec"):
        vm_migrate.prepare_incoming(drv, {"owner": "u1"})
    with pytest.raises(NotFound):
        drv.migration_spec("n1-u1-fw")
    assert not (tmp_path / "nodes" / "n1" / "vms").exists()


class _Live:
    """A driver that live-migrates (its calls recorded), beside one that does not."""

    flavour = "vm"
    live_migrate = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def info(self, iid: str) -> object:
        return object()

    def migration_spec(self, iid: str) -> dict[str, object]:
        return {"owner": "u1"}

    def migrate_out(self, iid: str, uri: str) -> dict[str, object]:
        self.calls.append(("out", uri))
        return {"total_ms": 1, "downtime_ms": 1}


class _Plain:
    flavour = "native"

    def info(self, iid: str) -> object:
        return object()


def test_agent_live_migration_commands_check_the_drivers_capability() -> None:
    from netfate.agent import live_migration

    class Node:
        def __init__(self, drv: object) -> None:
            self.drv = drv

        def driver_of(self, iid: str) -> object:
            return self.drv

    live = _Live()
    assert live_migration.handle(Node(live), "migrate_spec", "i1", {}) == \
        {"live_migrate": True, "owner": "u1"}  # type: ignore[arg-type]
    assert live_migration.handle(Node(_Plain()), "migrate_spec", "i1", {}) == \
        {"live_migrate": False}  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="does not live-migrate"):
        live_migration.handle(Node(_Plain()), "migrate_in", "i1", {})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="uri"):
        live_migration.handle(Node(live), "migrate_out", "i1", {})  # type: ignore[arg-type]
    assert live_migration.handle(Node(live), "migrate_out", "i1", {"uri": "tcp:h:1"})[
        "downtime_ms"] == 1  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown"):
        live_migration.handle(Node(live), "migrate_sideways", "i1", {})  # type: ignore[arg-type]
