"""The OCI runtime spec (config.json) of a container NF, and the paths its lifecycle scripts
see inside it. Pure.

The container joins the NF's network namespace by path (the driver made it, with the ports);
it gets its own PID, IPC, UTS and mount namespaces, a read-only root (the image's rootfs,
shared by every container of the image), the cgroup v1 limits of the descriptor (at the same
cgroup path a native NF uses, so accounting, freezing and cleanup are the same), and exactly
the Linux capabilities the descriptor declares. The NF's bundle is bound read-only at
/nf/bundle, its instance directory (config.json, state/, run/) at /nf/dir, the node's
notification queue at /nf/notify and the bundle's shared cache at /nf/cache: the same files
a native NF's scripts use, so state and config pass unchanged between flavours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netfate.drivers.cgroups import CFS_PERIOD_US
from netfate.naming import cgroup_parent
from netfate.proc import NETNS_DIR

IN_BUNDLE = "/nf/bundle"
IN_DIR = "/nf/dir"
IN_NOTIFY = "/nf/notify"
IN_CACHE = "/nf/cache"
TMP_SIZE = "size=8m"

# Kernel paths the container must not read or write (runc's defaults, as `runc spec` writes).
MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _bind(src: Path, dest: str, *, ro: bool) -> dict[str, Any]:
    opts = ["rbind", "nosuid", "nodev", "ro" if ro else "rw"]
    return {"destination": dest, "type": "bind", "source": str(src), "options": opts}


def spec(*, rootfs: Path, args: list[str], env: list[str], hostname: str, netns: str,
         cgroup: str, memory_mb: int, cpu_percent: int, capabilities: list[str],
         bundle_dir: Path, nf_dir: Path, notify_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """The config.json of one container NF (OCI runtime spec 1.0.2)."""
    caps = sorted(set(capabilities))
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                             "inheritable": [], "ambient": []},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=64k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", TMP_SIZE]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755", "size=1m"]},
            _bind(bundle_dir, IN_BUNDLE, ro=True),
            _bind(nf_dir, IN_DIR, ro=False),
            _bind(notify_dir, IN_NOTIFY, ro=False),
            _bind(cache_dir, IN_CACHE, ro=False),
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"},
                           {"type": "network", "path": f"{NETNS_DIR}/{netns}"}],
            "cgroupsPath": f"/{cgroup_parent()}/{cgroup}",
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": memory_mb * 1024 * 1024},
                "cpu": {"period": CFS_PERIOD_US, "quota": CFS_PERIOD_US * cpu_percent // 100},
            },
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }


def inside(path: str, nf_dir: Path) -> str:
    """A path a script is given, as the container sees it: the instance directory's files
    are under /nf/dir; anything else is passed unchanged."""
    p = Path(path)
    if p == nf_dir or nf_dir in p.parents:
        return IN_DIR + "/" + p.relative_to(nf_dir).as_posix() if p != nf_dir else IN_DIR
    return path
