"""What the benchmarks share: a testbed (brought up for the run if it was down), UDP probes
between host namespaces (statistics: netfate.bench.stats)."""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from netfate.drivers import netns
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import load_topology

PROBE_PORT = 9999


@contextmanager
def testbed() -> Iterator[Testbed]:
    """Attach to the running testbed, or bring the default one up and down around the run."""
    owned = lifecycle.load_state() is None
    if owned:
        lifecycle.up(load_topology(), services=False)
    tb = Testbed.attach()
    try:
        yield tb
    finally:
        tb.close()
        if owned:
            lifecycle.down()


class Prober:
    """UDP probes from a client namespace to the internet host; sockets live in each ns."""

    def __init__(self, client_ns: str, server_ns: str, server_ip: str) -> None:
        self.tx = netns.socket_in(client_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.rx = netns.socket_in(server_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind((server_ip, PROBE_PORT))
        self.rx.setblocking(False)
        self.dst = (server_ip, PROBE_PORT)
        self.tag = os.getpid() & 0xFFFF

    def close(self) -> None:
        self.tx.close()
        self.rx.close()

    def drain(self) -> None:
        while True:
            try:
                self.rx.recv(2048)
            except BlockingIOError:
                return

    def first_arrival(self, run: int, timeout: float = 3.0, interval: float = 0.0002) -> float:
        """Send probes every `interval` s until one of this run arrives; its arrival time."""
        deadline = time.perf_counter() + timeout
        seq = 0
        while time.perf_counter() < deadline:
            send_quietly(self.tx, struct.pack("!HII", self.tag, run, seq), self.dst)
            seq += 1
            r, _, _ = select.select([self.rx], [], [], interval)
            if r:
                now = time.perf_counter()
                while True:
                    try:
                        data = self.rx.recv(2048)
                    except BlockingIOError:
                        break
                    if len(data) >= 10:
                        tag, got_run, _ = struct.unpack("!HII", data[:10])
                        if tag == self.tag and got_run == run:
                            return now
        raise TimeoutError(f"no probe of run {run} arrived within {timeout}s")


def send_quietly(sock: socket.socket, data: bytes, dst: tuple[str, int]) -> None:
    try:
        sock.sendto(data, dst)
    except OSError:
        pass  # e.g. ENETUNREACH while an interface is being reconfigured; keep probing


def meminfo_available_kb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def slab_kb() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            k, v = line.split(":", 1)
            if k in ("MemAvailable", "MemFree", "Slab", "SUnreclaim", "Percpu", "KernelStack",
                     "VmallocUsed", "PageTables"):
                out[k] = int(v.split()[0])
    return out


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load1": round(os.getloadavg()[0], 2)}
