"""The VPN scenario's VM flavour (QEMU/TCG, netfate.drivers.vm): what it needs before it is
measured, what it is made of, and which process is the NF.

- `prepare()`: the guest (Debian's kernel and the project's initramfs, which carries
  strongSwan: netfate.drivers.vm_image) built before the testbed is attached, so that the
  CPE's VM driver finds it (a no-op when it is there);
- `ensure_template()`: the guest template for the VPN's device set (two ports), booted and
  saved once before the first start is timed, as `netfate bench vm` does: a template is made
  once per guest image and device set, not per start (netfate.drivers.vm_template);
- `image_mb()`: the kernel, the initramfs and the bundle, MB;
- `pids()`: the NF's QEMU process: its CPU and RSS are the CPE end's (the guest's charon,
  its userspace ESP and its kernel all run in it).
"""

from __future__ import annotations

import time
from pathlib import Path

from netfate.drivers import vm_image, vm_qemu, vm_template
from netfate.drivers.vm import BOOT_TIMEOUT, VM_MEMORY_MB, VmCompute
from netfate.errors import DriverError
from netfate.interfaces import ComputeDriver, NFInfo


def prepare() -> str:
    """Build the VM guest if it is not built; "" or why the VM flavour can't run here."""
    if not Path(vm_qemu.QEMU).is_file():
        return f"{vm_qemu.QEMU} is missing (install qemu-system-x86)"
    try:
        vm_image.build()
    except DriverError as exc:
        return f"the VM guest could not be built: {exc}"
    return ""


def _vm(driver: ComputeDriver) -> VmCompute:
    if not isinstance(driver, VmCompute):
        raise TypeError("the node's vm flavour is not netfate.drivers.vm")
    return driver


def ensure_template(driver: ComputeDriver, nports: int, memory_mb: int) -> float:
    """Seconds to find (or boot and save) the guest template of `nports` ports for an NF
    whose descriptor asks `memory_mb` (the driver gives at least VM_MEMORY_MB)."""
    drv = _vm(driver)
    t0 = time.monotonic()
    vm_template.ensure(drv.image_cache, vm_image.load(drv.image_cache), nports,
                       max(VM_MEMORY_MB, memory_mb), drv.mtu, BOOT_TIMEOUT)
    return time.monotonic() - t0


def image_mb(driver: ComputeDriver, bundle_mb: float) -> dict[str, float]:
    """What the VM NF is made of, MB: the guest's kernel and initramfs (shared by every VM
    NF of the node) and the NF's bundle. (Its guest template, made once per device set, is
    memory saved at boot, not an image: reported apart.)"""
    img = vm_image.load(_vm(driver).image_cache)
    return {"bundle_mb": bundle_mb, "kernel_mb": round(img.kernel_bytes / 1e6, 1),
            "initramfs_mb": round(img.initrd_bytes / 1e6, 1),
            "image_mb": round(img.disk_bytes / 1e6 + bundle_mb, 1)}


def pids(driver: ComputeDriver, info: NFInfo) -> list[int]:
    """The NF's QEMU process ([] if it is not running)."""
    rec = vm_qemu.running(_vm(driver).records.dir(info.instance_id))
    return [rec.pid] if rec is not None else []
