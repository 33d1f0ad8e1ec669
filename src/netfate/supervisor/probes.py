"""Readiness probes for Supervised.start: callables that say whether a process serves yet.
Each is cheap and returns at once (an OSError counts as "not yet")."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from netfate.supervisor.process import Probe


def tcp_port(port: int, host: str = "127.0.0.1") -> Probe:
    """Ready when a TCP connection to host:port is accepted."""
    def probe() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        return False
    return probe


def unix_socket(path: Path) -> Probe:
    """Ready when a connection to the Unix socket at ``path`` is accepted."""
    def probe() -> bool:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.2)
            s.connect(str(path))
            return True
        return False
    return probe


def path_exists(path: Path) -> Probe:
    """Ready when ``path`` exists."""
    return lambda: Path(path).exists()


def log_line(path: Path, text: str) -> Probe:
    """Ready when the file at ``path`` has a line containing ``text``."""
    def probe() -> bool:
        with contextlib.suppress(OSError):
            return any(text in line for line in
                       Path(path).read_text(errors="replace").splitlines())
        return False
    return probe


def all_of(*probes: Probe) -> Probe:
    """Ready when every probe is."""
    return lambda: all(p() for p in probes)


def http_ok(url: str) -> Probe:
    """Ready when GET ``url`` answers 200."""
    import httpx

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
    return probe
