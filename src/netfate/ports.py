"""Loopback TCP ports for the servers the project starts (NATS members, PostgreSQL, a QEMU
waiting for an incoming migration, orchestrator replicas).

A port found by binding to port 0 comes from the kernel's ephemeral range, the same range
the kernel hands outgoing connections their source ports from. Between choosing it and the
server binding it, any connection on the machine may take it: a NATS cluster member failed
"address already in use" on a route port that the routes between the members started
before it had taken (CI, 2026-12-03). Ports are chosen below that range instead, where the
kernel never puts an outgoing connection, and checked free by binding them.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
SPAN = 12000  # how far below the ephemeral range to choose from
TRIES = 200


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 if it cannot be read)."""
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` nothing is bound to, below the ephemeral range (see the module's
    docstring); from the ephemeral range only if none of TRIES random ones is free."""
    top = ephemeral_start()
    low = max(1024, top - SPAN)
    for _ in range(TRIES if top - 1 > low else 0):
        port = random.randint(low, top - 1)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
