"""A NATS cluster of N nats-server members on this machine (nats-server's own clustering:
full-mesh routes, one cluster name), for the scale-out deployment of issue #15 and its tests.
Each member is a supervised process with its PID record and log in ``rundir/member-<k>``.

    c = NatsCluster(rundir, size=3)
    c.start()                 # returns once every member routes to every other
    c.client_urls             # "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." for clients
    c.kill(1)                 # SIGKILL one member (fault tests); c.restart(1) brings it back
    c.stop()

The single embedded server (bus/server.py) stays the default; this is for `--nats N`."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from netfate.bus.server import PROGRAMS, _binary
from netfate.errors import DriverError
from netfate.ports import free_port
from netfate.supervisor import Supervised, probes

CLUSTER_NAME = "netfate"
MAX_MEMBERS = 9


@dataclass(frozen=True)
class Member:
    """One member's loopback ports: clients, routes (cluster) and HTTP monitoring."""
    client: int
    route: int
    monitor: int


class NatsCluster:
    """``size`` members (1-9) on ``host`` (loopback by default). ValueError for a size out of
    range; DriverError (StartError) from ``start`` if a member does not start or the mesh does
    not form within ``timeout`` s (then nothing it started is left running)."""

    def __init__(self, rundir: Path, size: int = 3, host: str = "127.0.0.1") -> None:
        if not 1 <= size <= MAX_MEMBERS:
            raise ValueError(f"NATS cluster size must be 1-{MAX_MEMBERS}, not {size}")
        self.rundir = rundir
        self.host = host
        self.members = [Member(free_port(), free_port(), free_port()) for _ in range(size)]
        self._sups: list[Supervised | None] = [None] * size

    @property
    def client_urls(self) -> str:
        """Every member's client URL, comma-separated (bus/urls.py reads it)."""
        return ",".join(f"nats://{self.host}:{m.client}" for m in self.members)

    def _argv(self, k: int) -> list[str]:
        m = self.members[k]
        routes = ",".join(f"nats://{self.host}:{o.route}"
                          for j, o in enumerate(self.members) if j != k)
        argv = [_binary(), "-a", self.host, "-p", str(m.client), "-m", str(m.monitor),
                "-n", f"{CLUSTER_NAME}-{k}", "--cluster_name", CLUSTER_NAME,
                "--cluster", f"nats://{self.host}:{m.route}"]
        return argv + (["--routes", routes] if routes else [])

    def _start_member(self, k: int, timeout: float) -> None:
        d = self.rundir / f"member-{k}"
        d.mkdir(parents=True, exist_ok=True)
        sup = Supervised(f"nats-server-{k}", self._argv(k), d, programs=PROGRAMS,
                         append_log=False)
        ready = probes.all_of(probes.log_line(sup.log, "Server is ready"),
                              probes.tcp_port(self.members[k].client, self.host))
        sup.start(ready=ready, timeout=timeout)
        self._sups[k] = sup

    def start(self, timeout: float = 15.0) -> None:
        try:
            for k in range(len(self.members)):
                self._start_member(k, timeout)
            self.wait_meshed(timeout)
        except BaseException:
            self.stop()
            raise

    def routed_to(self, k: int) -> set[str]:
        """The names of the members member ``k`` has a route to (its /routez)."""
        url = f"http://{self.host}:{self.members[k].monitor}/routez"
        data = httpx.get(url, timeout=2).raise_for_status().json()
        return {str(x.get("remote_name", "")) for x in data.get("routes") or []} - {""}

    def wait_meshed(self, timeout: float = 15.0) -> None:
        """Return once every running member routes to every other running one; DriverError
        naming the members still missing routes after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        missing: dict[int, set[str]] = {}
        while True:
            up = [k for k, s in enumerate(self._sups) if s is not None and s.running()]
            names = {f"{CLUSTER_NAME}-{k}" for k in up}
            missing = {}
            for k in up:
                try:
                    have = self.routed_to(k)
                except (httpx.HTTPError, ValueError):
                    have = set()
                want = names - {f"{CLUSTER_NAME}-{k}"} - have
                if want:
                    missing[k] = want
            if not missing:
                return
            if time.monotonic() > deadline:
                raise DriverError(f"NATS cluster not meshed after {timeout:g} s: "
                                  + "; ".join(f"member {k} lacks {sorted(v)}"
                                              for k, v in missing.items()))
            time.sleep(0.1)

    def pid(self, k: int) -> int | None:
        s = self._sups[k]
        return s.pid if s is not None else None

    def kill(self, k: int) -> int | None:
        """SIGKILL member ``k`` (by its recorded PID); returns the PID, None if not running."""
        s = self._sups[k]
        if s is None:
            return None
        pid = s.stop(grace=0.0, sig=signal.SIGKILL)
        self._sups[k] = None
        return pid

    def restart(self, k: int, timeout: float = 15.0) -> None:
        """Start member ``k`` again on its ports and wait for the mesh."""
        if self._sups[k] is None:
            self._start_member(k, timeout)
        self.wait_meshed(timeout)

    def stop(self) -> None:
        for k, s in enumerate(self._sups):
            if s is not None:
                s.stop(grace=3.0)
                self._sups[k] = None
