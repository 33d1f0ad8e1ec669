"""Which daemons of a container NF died. The bundles' daemon_start records "PID STARTTIME" in
$NF_RUN_DIR/<name>.pid, but inside a container PID is the container's PID namespace's; the
host finds the process among the NF's cgroup members by the NSpid line of
/proc/<pid>/status (proc(5)), and compares start times (field 22 of /proc/<pid>/stat, the
same in every PID namespace), so a recycled PID is never taken for the daemon."""

from __future__ import annotations

import contextlib
from pathlib import Path

from netfate.drivers import cgroups


def _starttime(host_pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{host_pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            return int(fields[19])
    return None


def ns_pids(cgroup: str) -> dict[int, int]:
    """PID inside the container -> host PID, for every live process of the NF's cgroup."""
    out: dict[int, int] = {}
    for pid in cgroups.pids(cgroup):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    out[int(line.split()[-1])] = pid
    return out


def dead_daemons(run_dir: Path, cgroup: str) -> list[str]:
    """The NF's long-lived daemons whose process no longer runs, by name (one-shot req-*
    processes are not daemons)."""
    files = sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []
    files = [f for f in files if not f.name.startswith("req-")]
    if not files:
        return []
    live = ns_pids(cgroup)
    dead = []
    for f in files:
        try:
            parts = f.read_text().split()
            pid, start = int(parts[0]), (int(parts[1]) if len(parts) > 1 else None)
        except (OSError, ValueError, IndexError):
            continue  # being written (daemon_start renames it into place)
        host = live.get(pid)
        if host is None or (start is not None and _starttime(host) != start):
            dead.append(f.stem)
    return dead
