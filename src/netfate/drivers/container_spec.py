"""The OCI runtime spec (config.json) of a container NF, and the paths its lifecycle scripts
see inside it. Pure.

The container joins the NF's network namespace by path (the driver made it, with the ports);
it gets its own PID, IPC, UTS and mount namespaces, a read-only root (the image's rootfs,
shared by every container of the image), the cgroup v1 limits of the descriptor (at the same
cgroup path a native NF uses, so accounting, freezing and cleanup are the same), and exactly
the Linux capabilities the descriptor declares. The NF's bundle is bound read-only at
/nf/bundle, its instance directory (config.json, state/, run/) at /nf/dir, its own
notification queue at /nf/notify and its own cache at /nf/cache (per-NF directories, never
the node's queue or a cache another NF shares: one container can neither read nor plant files
for another); the same files a native NF's scripts use, so state and config pass unchanged
between flavours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netfate.drivers import node_files
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
# Device nodes a kernel capability of the descriptor needs (`kernel:tun`: /dev/net/tun, for
# a userspace datapath such as strongSwan's kernel-libipsec). runc creates the node in the
# container's /dev and the device cgroup allows it; every other device stays denied.
DEVICES = {"kernel:tun": {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200,
                          "fileMode": 0o666, "uid": 0, "gid": 0}}
NODE_FILE_ROOTS = node_files.ROOTS  # the container's tmpfs mounts (see _file_bind)
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _bind(src: Path, dest: str, *, ro: bool) -> dict[str, Any]:
    opts = ["rbind", "nosuid", "nodev", "ro" if ro else "rw"]
    return {"destination": dest, "type": "bind", "source": str(src), "options": opts}


def _file_bind(path: Path) -> dict[str, Any]:
    """A node file bound read-only at its own path. Only under /run or /tmp: they are the
    container's own tmpfs, so runc makes the mount point there, never in the image's rootfs
    (which every container of the image shares, read-only). ValueError otherwise."""
    if not path.is_absolute() or ".." in path.parts:
        raise ValueError(f"node file {str(path)[:200]!r}: not a plain absolute path")
    if len(path.parts) < 3 or path.parts[1] not in NODE_FILE_ROOTS:
        raise ValueError(f"node file {str(path)[:200]!r}: a container can be given node "
                         f"files under {' or '.join('/' + r for r in NODE_FILE_ROOTS)} only")
    opts = ["bind", "nosuid", "nodev", "noexec", "ro"]
    return {"destination": str(path), "type": "bind", "source": str(path), "options": opts}


def spec(*, rootfs: Path, args: list[str], env: list[str], hostname: str, netns: str,
         cgroup: str, memory_mb: int, cpu_percent: int, capabilities: list[str],
         bundle_dir: Path, nf_dir: Path, notify_dir: Path, cache_dir: Path,
         sysctl: dict[str, str] | None = None, devices: list[str] | None = None,
         node_files: list[str] | None = None) -> dict[str, Any]:
    """The config.json of one container NF (OCI runtime spec 1.0.2). `sysctl`: the
    descriptor's network sysctls, set by runc in the NF's namespace before it starts.
    `devices`: the descriptor's capabilities; those in DEVICES get their device node.
    `node_files`: absolute paths of node files bound read-only at the same path."""
    caps = sorted(set(capabilities))
    devs = [DEVICES[d] for d in dict.fromkeys(devices or []) if d in DEVICES]
    files = [_file_bind(Path(f)) for f in dict.fromkeys(node_files or [])]
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
            *files,
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"},
                           {"type": "network", "path": f"{NETNS_DIR}/{netns}"}],
            "cgroupsPath": f"/{cgroup_parent()}/{cgroup}",
            **({"devices": [dict(d) for d in devs]} if devs else {}),
            "resources": {
                "devices": [{"allow": False, "access": "rwm"},
                            *({"allow": True, "type": d["type"], "major": d["major"],
                               "minor": d["minor"], "access": "rwm"} for d in devs)],
                "memory": {"limit": memory_mb * 1024 * 1024},
                "cpu": {"period": CFS_PERIOD_US, "quota": CFS_PERIOD_US * cpu_percent // 100},
            },
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
            **({"sysctl": dict(sysctl)} if sysctl else {}),
        },
    }


def inside(path: str, nf_dir: Path) -> str:
    """A path a script is given, as the container sees it: the instance directory's files
    are under /nf/dir; anything else is passed unchanged."""
    p = Path(path)
    if p == nf_dir or nf_dir in p.parents:
        return IN_DIR + "/" + p.relative_to(nf_dir).as_posix() if p != nf_dir else IN_DIR
    return path


def for_instance(cfg: dict[str, Any], *, hostname: str, netns: str, cgroup: str,
                 nf_dir: Path, notify_dir: Path | None = None,
                 cache_dir: Path | None = None) -> dict[str, Any]:
    """`cfg` (a `spec`) with the instance's own hostname, network namespace, cgroup and
    instance directory: what `spec` gives for them, without looking at the image again (a
    pre-made container's spec, made for its pool entry, becomes its NF's)."""
    import copy

    out = copy.deepcopy(cfg)
    out["hostname"] = hostname
    linux = out["linux"]
    linux["cgroupsPath"] = f"/{cgroup_parent()}/{cgroup}"
    for ns in linux["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"{NETNS_DIR}/{netns}"
    moved = {IN_DIR: nf_dir, IN_NOTIFY: notify_dir, IN_CACHE: cache_dir}
    for m in out["mounts"]:
        src = moved.get(m["destination"])
        if src is not None:
            m["source"] = str(src)
    return out
