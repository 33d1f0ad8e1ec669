"""One QEMU process per VM NF: its command line, its tap ports, starting it and ending it.

The VM's files live in its instance directory: qmp.sock (the monitor), qga.sock (the guest
agent's virtio-serial port), console.log (the serial console), qemu.pid (a PID record with
the start time: netfate.supervisor.records, so a recycled PID is never taken for ours).
QEMU runs under TCG unless KVM is asked for (it hangs on this machine: MACHINE-NOTES.md).
Taps are persistent (`ip tuntap add`): they stay attached to the LSI across a QEMU restart.
The guest is told its ports' names by MAC on the kernel command line (netfate.port=NAME,MAC),
which /init (vm_init.sh) applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from netfate.drivers.vm_image import GuestImage
from netfate.errors import DriverError
from netfate.proc import alive, end_pid
from netfate.supervisor.records import Record, read_record, start_time, write_record

QEMU = "/usr/bin/qemu-system-x86_64"
# Boot faster under TCG: no crypto self-tests, no TSC calibration, quiet console.
TB_SIZE_MB = 256
KERNEL_ARGS = ("console=ttyS0", "quiet", "panic=-1", "cryptomgr.notests", "tsc=reliable",
               "no_timer_check", "mitigations=off")


def port_mac(key: str, port: str) -> str:
    """A stable locally administered MAC for the NF's port (52:54:00 is QEMU's prefix)."""
    d = hashlib.sha256(f"{key}/{port}".encode()).digest()
    return f"52:54:00:{d[0]:02x}:{d[1]:02x}:{d[2]:02x}"


def argv(vm_dir: Path, image: GuestImage, name: str, ports: list[tuple[str, str, str]],
         memory_mb: int, *, mtu: int = 1500, incoming: str | None = None,
         accel: str = "tcg") -> list[str]:
    """QEMU's command line. ``ports``: (name in the guest, tap, MAC); ``incoming``: a
    migration URI to wait on (the VM then starts from the state sent to it); ``mtu``: the
    LSI's, given to the guest's NICs (virtio host_mtu). The device
    set must be the same on both ends of a migration, so it depends only on the ports."""
    cmdline = [*KERNEL_ARGS, *(f"netfate.port={n},{mac}" for n, _, mac in ports)]
    out = [
        # tb-size: TCG's translation cache defaults to 1 GiB here, most of a guest's RSS.
        QEMU, "-name", name, "-machine", "pc",
        "-accel", f"{accel},tb-size={TB_SIZE_MB}" if accel == "tcg" else accel,
        "-m", str(memory_mb),
        "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", image.kernel, "-initrd", image.initrd, "-append", " ".join(cmdline),
        "-serial", f"file:{vm_dir / 'console.log'}",
        "-qmp", f"unix:{vm_dir / 'qmp.sock'},server=on,wait=off",
        "-chardev", f"socket,id=qga,path={vm_dir / 'qga.sock'},server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
        "-daemonize", "-pidfile", str(vm_dir / "qemu.pid.raw"),
    ]
    for i, (_, tap, mac) in enumerate(ports):
        # vnet_hdr=off: no checksum offload towards the tap (OVS's userspace datapath would
        # forward partial checksums; MACHINE-NOTES: tx offload must be off on NF ports).
        out += ["-netdev", f"tap,id=n{i},ifname={tap},script=no,downscript=no,vnet_hdr=off",
                "-device", f"virtio-net-pci,netdev=n{i},mac={mac},id=nic{i},host_mtu={mtu}"]
    if incoming:
        out += ["-incoming", incoming]
    return out


def start(vm_dir: Path, cmd: list[str]) -> Record:
    """Run QEMU (it daemonizes once its devices are up) and record its PID in qemu.pid.
    DriverError with QEMU's message if it does not start."""
    for f in ("qmp.sock", "qga.sock", "qemu.pid.raw"):
        (vm_dir / f).unlink(missing_ok=True)
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30,  # noqa: S603
                            check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"QEMU did not start: {exc}") from None
    try:
        pid = int((vm_dir / "qemu.pid.raw").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise DriverError(f"QEMU did not start (exit {cp.returncode}): "
                          f"{cp.stderr.strip()[-800:]}") from None
    rec = Record(pid, start_time(pid), cmd[:1])
    write_record(vm_dir / "qemu.pid", rec)
    return rec


def running(vm_dir: Path) -> Record | None:
    """The recorded QEMU if it still runs (same PID and start time), else None."""
    rec = read_record(vm_dir / "qemu.pid")
    if rec is None or not alive(rec.pid):
        return None
    if rec.start is not None and start_time(rec.pid) != rec.start:
        return None
    return rec


def stop(vm_dir: Path) -> None:
    """End the recorded QEMU (only that PID) and forget it; a no-op if it is gone."""
    rec = running(vm_dir)
    if rec is not None:
        end_pid(rec.pid, signal.SIGTERM, timeout=3.0)
    (vm_dir / "qemu.pid").unlink(missing_ok=True)


def stop_all_under(run_dir: Path) -> list[int]:
    """End every recorded QEMU of every node's VM NFs under ``run_dir`` (testbed down);
    their PIDs."""
    ended = []
    for pidfile in sorted(run_dir.glob("nodes/*/vms/*/qemu.pid")):
        rec = running(pidfile.parent)
        if rec is not None:
            stop(pidfile.parent)
            ended.append(rec.pid)
    return ended


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True,  # noqa: S603
                          check=False)


def tap_create(tap: str, mtu: int) -> None:
    """A persistent tap, up, with ``mtu``; a no-op if it exists. DriverError on failure."""
    if _ip("link", "show", "dev", tap).returncode != 0:
        cp = _ip("tuntap", "add", "dev", tap, "mode", "tap")
        if cp.returncode != 0:
            raise DriverError(f"cannot create tap {tap}: {cp.stderr.strip()}")
    cp = _ip("link", "set", "dev", tap, "mtu", str(mtu), "up")
    if cp.returncode != 0:
        raise DriverError(f"cannot set tap {tap} up: {cp.stderr.strip()}")


def tap_delete(tap: str) -> None:
    """Remove the tap; a no-op if it does not exist."""
    if _ip("link", "show", "dev", tap).returncode == 0:
        _ip("link", "del", "dev", tap)


def free_port() -> int:
    """A free TCP port on loopback for an incoming migration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def save_spec(vm_dir: Path, spec: dict[str, object]) -> None:
    tmp = vm_dir / ".vm.json.tmp"
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, vm_dir / "vm.json")


def load_spec(vm_dir: Path) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((vm_dir / "vm.json").read_text())
        if isinstance(data, dict):
            return data
    return {}


def wait_gone(vm_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while running(vm_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
