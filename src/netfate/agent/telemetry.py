"""The node's available resources: the host's, read from /proc, or, for an emulated node
that shares a host with others, a declared budget against what its own NFs use (cgroups)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from netfate.bus.messages import Resources
from netfate.drivers import cgroups


class CpuMeter:
    """CPU utilisation between two calls, from /proc/stat."""

    def __init__(self) -> None:
        self._last = self._read()
        self._value = 0.0

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def utilisation(self) -> float:
        total, idle = self._read()
        dt, di = total - self._last[0], idle - self._last[1]
        if dt < 20:  # under ~0.2 s of ticks: too short to mean anything; keep the last value
            return self._value
        self._last = (total, idle)
        self._value = max(0.0, min(1.0, 1 - di / dt))
        return self._value


def memory_mb() -> tuple[int, int]:
    info: dict[str, int] = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            k, v = line.split(":", 1)
            info[k] = int(v.split()[0])
    return info["MemTotal"] // 1024, info.get("MemAvailable", info["MemFree"]) // 1024


def resources(cpu: CpuMeter, nf_count: int) -> Resources:
    total, free = memory_mb()
    return Resources(mem_total_mb=total, mem_free_mb=free, cpu_util=round(cpu.utilisation(), 3),
                     cpus=float(os.cpu_count() or 1),
                     nf_count=nf_count)


@dataclass
class Budget:
    """A declared capacity (e.g. a home gateway's 256 MB and one core) and the NFs' usage."""

    mem_mb: int
    cpus: float
    _last: tuple[float, int] = field(default=(0.0, 0))

    def resources(self, instance_ids: list[str]) -> Resources:
        used_mb = sum((cgroups.memory_bytes(i) or 0) for i in instance_ids) // (1024 * 1024)
        cpu_ns = sum(cgroups.cpu_ns(i) for i in instance_ids)
        now = time.monotonic()
        t0, c0 = self._last
        util = 0.0
        if t0 and now > t0 and cpu_ns >= c0:
            util = min(1.0, (cpu_ns - c0) / 1e9 / ((now - t0) * self.cpus))
        self._last = (now, cpu_ns)
        return Resources(mem_total_mb=self.mem_mb, mem_free_mb=max(0, self.mem_mb - used_mb),
                         cpus=self.cpus,
                         cpu_util=round(util, 3), nf_count=len(instance_ids))
