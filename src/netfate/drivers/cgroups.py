"""Resource limits for native NFs through cgroup v1 (memory, cpu, freezer): this machine's
cgroups are hybrid and v2 has no memory controller. Each NF gets fate-nfs/<id> per controller.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from netfate.errors import DriverError
from netfate.naming import cgroup_parent

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct", "freezer")
CFS_PERIOD_US = 100_000


def available() -> bool:
    return all((ROOT / c / "cgroup.procs").exists() for c in CONTROLLERS)


def path(controller: str, cg: str) -> Path:
    return ROOT / controller / cgroup_parent() / cg


def _write(p: Path, value: str) -> None:
    try:
        p.write_text(value)
    except OSError as exc:
        raise DriverError(f"cannot write {value!r} to {p}: {exc}") from exc


def create(cg: str, memory_mb: int, cpu_percent: int) -> None:
    """Make the cgroups and set the limits (idempotent)."""
    if not available():
        return
    for c in CONTROLLERS:
        path(c, cg).mkdir(parents=True, exist_ok=True)
    _write(path("memory", cg) / "memory.limit_in_bytes", str(memory_mb * 1024 * 1024))
    _write(path("cpu", cg) / "cpu.cfs_period_us", str(CFS_PERIOD_US))
    _write(path("cpu", cg) / "cpu.cfs_quota_us", str(CFS_PERIOD_US * cpu_percent // 100))


def procs_files(cg: str) -> list[str]:
    """Each controller's cgroup.procs, for a child to write its PID into before exec."""
    if not available():
        return []
    return [str(path(c, cg) / "cgroup.procs") for c in CONTROLLERS]


def pids(cg: str) -> list[int]:
    try:
        text = (path("memory", cg) / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def memory_bytes(cg: str) -> int | None:
    try:
        return int((path("memory", cg) / "memory.usage_in_bytes").read_text())
    except (OSError, ValueError):
        return None


def cpu_ns(cg: str) -> int:
    """CPU time the NF's processes have used, in nanoseconds."""
    try:
        return int((path("cpuacct", cg) / "cpuacct.usage").read_text())
    except (OSError, ValueError):
        return 0


def set_frozen(cg: str, frozen: bool) -> None:
    if not available():
        return
    state = path("freezer", cg) / "freezer.state"
    if state.exists():
        _write(state, "FROZEN" if frozen else "THAWED")


def freezer_state(cg: str) -> str | None:
    """The cgroup's freezer state (THAWED, FREEZING, FROZEN; what `runc pause` sets and
    `runc state` reports as paused), None if it has none."""
    try:
        return (path("freezer", cg) / "freezer.state").read_text().strip()
    except OSError:
        return None


def delete(cg: str) -> None:
    """End the processes this NF left (they are ours: they sit in our cgroup), then remove it."""
    if not available():
        return
    with contextlib.suppress(DriverError):
        set_frozen(cg, False)
    for _ in range(50):
        left = pids(cg)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    for c in CONTROLLERS:
        p = path(c, cg)
        for _ in range(50):
            try:
                p.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


def list_ours() -> list[str]:
    names: set[str] = set()
    for c in CONTROLLERS:
        parent = ROOT / c / cgroup_parent()
        if parent.is_dir():
            names.update(d.name for d in parent.iterdir() if d.is_dir())
    return sorted(names)


def remove_parent() -> None:
    """Remove the project's parent cgroup from every hierarchy (runc, for container NFs,
    makes it in all of them: pids, devices, blkio, ...); only empty ones go."""
    hierarchies = sorted(p for p in ROOT.iterdir() if p.is_dir()) if ROOT.is_dir() else []
    for h in hierarchies:
        with contextlib.suppress(OSError):
            (h / cgroup_parent()).rmdir()
