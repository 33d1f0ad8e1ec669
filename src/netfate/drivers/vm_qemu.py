"""One QEMU process per VM NF: its command line, its tap ports, starting it and ending it.

The VM's files live in its instance directory: qmp.sock (the monitor), qga.sock (the guest
agent's virtio-serial port), console.log (the serial console), qemu.pid (a PID record with
the start time: netfate.supervisor.records, so a recycled PID is never taken for ours).
QEMU runs under TCG unless KVM is asked for (it hangs on this machine: MACHINE-NOTES.md).
Taps are persistent (`ip tuntap add`): they stay attached to the LSI across a QEMU restart.
A booted guest is told its ports' names by MAC on the kernel command line
(netfate.port=NAME,MAC), which /init (vm_init.sh) applies; a guest restored from a template
(netfate.drivers.vm_template) learns them after it resumes, through the guest agent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from netfate.drivers import netns_release
from netfate.drivers.vm_image import GuestImage
from netfate.errors import DriverError
from netfate.proc import alive, end_pid
from netfate.supervisor.records import Record, read_record, start_time, write_record

QEMU = "/usr/bin/qemu-system-x86_64"
# Boot faster under TCG: no crypto self-tests, no TSC calibration, quiet console.
# init_on_free: a page the guest frees is zeroed, so a saved or migrated guest's stream (and a
# restored guest's RSS) carries only the memory in use: QEMU sends zero pages as flags.
TB_SIZE_MB = 256
KERNEL_ARGS = ("console=ttyS0", "quiet", "panic=-1", "cryptomgr.notests", "tsc=reliable",
               "no_timer_check", "mitigations=off", "init_on_free=1")


def port_mac(key: str, port: str) -> str:
    """A stable locally administered MAC for the NF's port (52:54:00 is QEMU's prefix)."""
    d = hashlib.sha256(f"{key}/{port}".encode()).digest()
    return f"52:54:00:{d[0]:02x}:{d[1]:02x}:{d[2]:02x}"


def argv(vm_dir: Path, image: GuestImage, name: str, ports: list[tuple[str, str, str]],
         memory_mb: int, *, mtu: int = 1500, incoming: str | None = None,
         accel: str = "tcg", restore: bool = False) -> list[str]:
    """QEMU's command line. ``ports``: (name in the guest, tap, MAC; a tap "" is a port on
    an unconnected hub: a template's); ``incoming``: a migration URI to wait on (the VM then
    starts from the state sent to it); ``restore``: that state is a template's (the guest
    booted long ago: no initrd is loaded, no port names given); ``mtu``: the LSI's, given to
    the guest's NICs (virtio host_mtu). The device set must be the same on both ends of a
    migration and for a template and its restored guests, so it depends only on the number
    of ports, the memory and the MTU."""
    cmdline = [*KERNEL_ARGS]
    if not restore:
        cmdline += [f"netfate.port={n},{mac}" for n, tap, mac in ports if tap]
    boot = ["-kernel", image.kernel, "-append", " ".join(cmdline)]
    if not restore:
        boot[2:2] = ["-initrd", image.initrd]
    out = [
        # tb-size: TCG's translation cache defaults to 1 GiB here, most of a guest's RSS.
        QEMU, "-name", name, "-machine", "pc",
        "-accel", f"{accel},tb-size={TB_SIZE_MB}" if accel == "tcg" else accel,
        "-m", str(memory_mb),
        "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
        # A guest that panics or reboots ends QEMU: reported as a crash, started afresh.
        "-no-reboot", *boot,
        "-serial", f"file:{vm_dir / 'console.log'}",
        # Relative to QEMU's working directory, vm_dir (start()): a unix socket's path is
        # bounded (108 bytes) and a long run dir, node or owner name exceeds it.
        "-qmp", "unix:qmp.sock,server=on,wait=off",
        "-chardev", "socket,id=qga,path=qga.sock,server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
        "-daemonize", "-pidfile", str(vm_dir / "qemu.pid.raw"),
    ]
    for i, (_, tap, mac) in enumerate(ports):
        # vnet_hdr=off: no checksum offload towards the tap (OVS's userspace datapath would
        # forward partial checksums; MACHINE-NOTES: tx offload must be off on NF ports).
        netdev = f"tap,id=n{i},ifname={tap},script=no,downscript=no,vnet_hdr=off" if tap \
            else f"hubport,id=n{i},hubid={i}"
        out += ["-netdev", netdev,
                "-device", f"virtio-net-pci,netdev=n{i},mac={mac},id=nic{i},host_mtu={mtu}"]
    if incoming:
        out += ["-incoming", incoming]
    return out


def start(vm_dir: Path, cmd: list[str], pass_fds: tuple[int, ...] = ()) -> Record:
    """Run QEMU (it daemonizes once its devices are up) and record its PID in qemu.pid;
    ``pass_fds``: descriptors it inherits (an ``-incoming fd:N`` template's state).
    DriverError with QEMU's message if it does not start."""
    for f in ("qmp.sock", "qga.sock", "qemu.pid.raw"):
        (vm_dir / f).unlink(missing_ok=True)
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30,  # noqa: S603
                            check=False, stdin=subprocess.DEVNULL, pass_fds=pass_fds,
                            cwd=vm_dir)  # where argv's relative socket names are
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
    netns_release.clear([tap])  # a native NF of the same id just deleted: its veth lingers
    kind = _link_kind(tap)
    if kind not in (None, "tun"):
        # A leftover of another flavour's NF of the same instance id (a veth): QEMU would
        # fail with a bare "could not configure /dev/net/tun: Invalid argument".
        raise DriverError(f"cannot create tap {tap}: an interface of that name exists and is "
                          f"a {kind or 'link of unknown kind'}, not a tap")
    if kind is None:
        cp = _ip("tuntap", "add", "dev", tap, "mode", "tap")
        if cp.returncode != 0:
            raise DriverError(f"cannot create tap {tap}: {cp.stderr.strip()}")
    cp = _ip("link", "set", "dev", tap, "mtu", str(mtu), "up")
    if cp.returncode != 0:
        raise DriverError(f"cannot set tap {tap} up: {cp.stderr.strip()}")


def _link_kind(name: str) -> str | None:
    """None if no link has this name, else its kind ("tun", "veth", ...; "" if it has none)."""
    cp = _ip("-d", "-j", "link", "show", "dev", name)
    if cp.returncode != 0:
        return None
    try:
        links = json.loads(cp.stdout)
        return str(links[0].get("linkinfo", {}).get("info_kind", ""))
    except (ValueError, IndexError, AttributeError):
        return ""


def tap_delete(tap: str) -> None:
    """Remove the tap; a no-op if it does not exist."""
    if _ip("link", "show", "dev", tap).returncode == 0:
        _ip("link", "del", "dev", tap)


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
