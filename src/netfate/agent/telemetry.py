"""The node's available resources, read from /proc (no extra dependency)."""

from __future__ import annotations

from netfate.bus.messages import Resources


class CpuMeter:
    """CPU utilisation between two calls, from /proc/stat."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def utilisation(self) -> float:
        total, idle = self._read()
        dt, di = total - self._last[0], idle - self._last[1]
        self._last = (total, idle)
        return 0.0 if dt <= 0 else max(0.0, min(1.0, 1 - di / dt))


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
                     nf_count=nf_count)
