"""Guest templates: a VM NF's QEMU starts from a saved, already booted guest instead of booting.

The guest is booted once per (guest image, number of ports, memory, MTU): kernel, initramfs
and /init run in that template, which is then stopped and saved with QMP ``migrate`` to a
file. Each VM NF's QEMU loads it (``-incoming fd:N``) and resumes it, on its own taps, so a
start costs QEMU's own start, loading the used part of the guest's memory and the
NF's scripts. The idea is SnowFlock's VM fork (Lagar-Cavilla et al., EuroSys 2009), LightVM's
(Manco et al., SOSP 2017, "My VM is lighter (and safer) than your container") and SOCK's
zygotes (Oakes et al., USENIX ATC 2018).

A restored guest still carries the template's identity, so right after it resumes it learns
its own through the guest agent (`identify`): its ports' names and MACs (the template's NICs
have the fixed MACs `template_mac(i)`), the time, and fresh entropy for its random pool
(guests forked from one template otherwise share the template's pool state).

Templates live in ``<image cache>/templates/<key>/<ports>p-<memory>m-<mtu>.vmstate``; the key
hashes the guest image's key, QEMU's binary, the kernel's arguments and this module's format,
so a changed input makes new ones (and the old ones are removed). A template that fails to
restore is discarded; the driver then boots the guest as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from netfate.drivers import vm_qemu
from netfate.drivers.vm_image import GuestImage
from netfate.drivers.vm_qmp import GuestAgent, Qmp
from netfate.errors import DriverError

FORMAT = "1"
SAVE_TIMEOUT = 60.0  # s for QEMU to write a template (~80 MB)
GUEST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Freed pages are zeroed (init_on_free, vm_qemu.KERNEL_ARGS) and the page cache dropped: the
# saved state holds the memory in use only.
_SETTLE = "sync; echo 3 > /proc/sys/vm/drop_caches"
# Run in a restored guest with: time, entropy, then (template MAC, name, MAC) per port.
# Two passes so that a port named like another NIC's current name never collides.
_IDENTIFY = r"""
set -e
date -s "@$1" >/dev/null 2>&1 || true
printf '%s' "$2" > /dev/urandom
shift 2
i=0
for tmac in "$@"; do
    [ $((i % 3)) -eq 0 ] || { i=$((i + 1)); continue; }
    dev=""
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address")" = "$tmac" ] && dev=${d##*/}
    done
    [ -n "$dev" ] || { echo "identify: no NIC has MAC $tmac" >&2; exit 1; }
    ip link set dev "$dev" down
    ip link set dev "$dev" name "nfp$((i / 3))"
    i=$((i + 1))
done
n=0
while [ $# -ge 3 ]; do
    ip link set dev "nfp$n" address "$3" name "$2"
    sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
    ip link set dev "$2" up
    n=$((n + 1))
    shift 3
done
"""


def template_mac(i: int) -> str:
    """The MAC of a template's NIC ``i`` (a restored guest's NICs carry it until identify)."""
    return f"52:54:00:fe:ff:{i:02x}"


def key(image: GuestImage) -> str:
    """What every template of this guest depends on, hashed: the guest image, QEMU's binary,
    the kernel's arguments, this module's format."""
    st = Path(vm_qemu.QEMU).stat()
    text = (f"{FORMAT}/{image.key}/{st.st_size}:{int(st.st_mtime)}/"
            f"{' '.join(vm_qemu.KERNEL_ARGS)}")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path(cache: Path, image: GuestImage, nports: int, memory_mb: int, mtu: int) -> Path:
    """Where the template of this device set is (or will be)."""
    return cache / "templates" / key(image) / f"{nports}p-{memory_mb}m-{mtu}.vmstate"


def ensure(cache: Path, image: GuestImage, nports: int, memory_mb: int, mtu: int,
           boot_timeout: float) -> Path:
    """The template for this device set, booted and saved first if there is none (one
    builder at a time: a lock file; the others wait and then find it). Templates of other
    guest images or QEMUs are removed then. DriverError if the guest does not boot within
    ``boot_timeout`` s or the save fails (nothing is left)."""
    dest = path(cache, image, nports, memory_mb, mtu)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not dest.is_file():
                _build(dest, image, nports, memory_mb, mtu, boot_timeout)
                for old in dest.parent.parent.iterdir():
                    if old.is_dir() and old != dest.parent:
                        shutil.rmtree(old, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return dest


def discard(template: Path) -> None:
    """Remove a template that did not restore (the next create builds it again)."""
    template.unlink(missing_ok=True)


def _build(dest: Path, image: GuestImage, nports: int, memory_mb: int, mtu: int,
           boot_timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="fate-vmtpl-") as tmpd:
        d = Path(tmpd)
        ports = [(f"t{i}", "", template_mac(i)) for i in range(nports)]
        vm_qemu.start(d, vm_qemu.argv(d, image, "fate-template", ports, memory_mb, mtu=mtu))
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            ga = GuestAgent(d / "qga.sock", timeout=30)
            try:
                ga.sync(boot_timeout)
                rc, _, err = ga.run(["/bin/sh", "-c", _SETTLE], {"PATH": GUEST_PATH}, 30)
            finally:
                ga.close()
            if rc != 0:
                raise DriverError(f"template guest: settling failed: {err.strip()[-300:]}")
            qmp = Qmp(d / "qmp.sock", timeout=30)
            try:
                # Saved running (an idle guest converges at once): a guest saved stopped
                # would load stopped too (QEMU carries the run state in the stream).
                with open(tmp, "wb") as fh:
                    qmp.getfd("template", fh.fileno())
                    qmp.execute("migrate-set-parameters", {"max-bandwidth": 1 << 34})
                    qmp.execute("migrate", {"uri": "fd:template"})
                    _wait_saved(qmp)
            finally:
                qmp.close()
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
            vm_qemu.stop(d)


def _wait_saved(qmp: Qmp) -> None:
    st = qmp.migration_end(SAVE_TIMEOUT, 0.02)
    if st is None:
        with contextlib.suppress(DriverError):  # the timeout is the error to report
            qmp.execute("migrate_cancel")
        raise DriverError(f"saving the template took over {SAVE_TIMEOUT}s")
    if st["status"] != "completed":
        raise DriverError(f"saving the template failed: {st.get('error-desc', st['status'])}")


def restore(d: Path, cache: Path, image: GuestImage, name: str,
            ports: list[tuple[str, str, str]], memory_mb: int, mtu: int,
            boot_timeout: float, timeout: float) -> None:
    """Start the VM's QEMU in ``d`` from its template (built first if there is none,
    ``boot_timeout``) on its ``ports`` (name, tap, MAC), and give the guest its identity
    once it answers (``timeout`` s). DriverError if any of it fails; a template QEMU
    refused is discarded (the next create builds it again)."""
    tpl = ensure(cache, image, len(ports), memory_mb, mtu, boot_timeout)
    try:
        with open(tpl, "rb") as fh:
            fd = fh.fileno()
            vm_qemu.start(d, vm_qemu.argv(d, image, name, ports, memory_mb, mtu=mtu,
                                          incoming=f"fd:{fd}", restore=True), pass_fds=(fd,))
        ga = GuestAgent(d / "qga.sock", timeout=30)
        try:
            ga.sync(timeout)
            identify(ga, [(n, mac) for n, _, mac in ports])
        finally:
            ga.close()  # idempotent: identify closes it too
    except DriverError:
        if vm_qemu.running(d) is None:  # QEMU refused the state: a stale template
            discard(tpl)
        raise


def identify(ga: GuestAgent, ports: list[tuple[str, str]], timeout: float = 30.0) -> None:
    """Give a guest restored from a template its identity: ``ports`` (name, MAC) in the
    order of its NICs; the host's time; 32 fresh random bytes mixed into its pool.
    Closes ``ga``. DriverError if the guest can't apply it."""
    args = [str(int(time.time())), secrets.token_hex(32)]
    for i, (name, mac) in enumerate(ports):
        args += [template_mac(i), name, mac]
    try:
        rc, _, err = ga.run(["/bin/sh", "-c", _IDENTIFY, "identify", *args],
                            {"PATH": GUEST_PATH}, timeout)
    finally:
        ga.close()
    if rc != 0:
        raise DriverError(f"the restored guest did not take its identity: {err.strip()[-500:]}")
