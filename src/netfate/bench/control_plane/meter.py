"""CPU and memory of the bench's processes, from /proc."""

from __future__ import annotations

import asyncio
import os
import time


def cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy (not idle or waiting for I/O) since boot."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Meter:
    """CPU (average over a window) and RSS of the processes, sampled every 0.5 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.rss_max: dict[str, float] = {}
        self.marks: dict[str, tuple[float, dict[str, float | None]]] = {}

    def cpu(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: cpu_s(pid) for k, pid in self.pids.items()}
        out["machine"] = machine_busy_s()
        return out

    def mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), self.cpu())

    def cpu_seconds(self, a: str, b: str, key: str) -> float | None:
        x, y = self.marks[a][1].get(key), self.marks[b][1].get(key)
        return None if x is None or y is None else y - x

    def window(self, a: str, b: str) -> dict[str, float | None]:
        (t0, c0), (t1, c1) = self.marks[a], self.marks[b]
        out: dict[str, float | None] = {}
        for k in [*self.pids, "machine"]:
            x, y = c0.get(k), c1.get(k)
            out[k] = (round(100 * (y - x) / (t1 - t0), 1)
                      if x is not None and y is not None and t1 > t0 else None)
        ours = [out[k] for k in self.pids]
        if out["machine"] is not None and all(v is not None for v in ours):
            # Everything else the machine ran meanwhile (it is shared): 200% is both cores.
            out["others"] = round(max(0.0, out["machine"] - sum(v or 0.0 for v in ours)), 1)
        return out

    async def sample(self) -> None:
        while True:
            for k, pid in self.pids.items():
                r = rss_mb(pid)
                if r is not None:
                    self.rss_max[k] = max(self.rss_max.get(k, 0.0), r)
            await asyncio.sleep(0.5)
